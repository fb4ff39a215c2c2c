"""The molehill wire protocol: msgpack frames carried in binary websocket messages (sans-I/O).

Theory of operation
-------------------
One websocket connects an agent to the relay and carries one tunnel. Every websocket message
is a msgpack array of one or more frames; a frame is a msgpack array
``[type, stream_id, *fields]``.
Stream id 0 is the session itself (hello, welcome, error, ping, pong, goaway); streams are opened
by the relay only (a public connection arrived) and have ids >= 1.

Session:  agent -> HELLO(version, name, token, resume, window, options)
          relay -> WELCOME(name, url, resume, lease, ping_interval, window) or ERROR(code, message)
Streams:  relay -> OPEN(client_host, client_port)
          both  -> DATA(bytes) / END (half close) / RESET(code, message) / CREDIT(n)
Liveness: both  -> PING(payload) answered by PONG(payload)
Shutdown: relay -> GOAWAY(reason): the relay is going away; reconnect later.

Flow control is per stream and per direction, like HTTP/2: a side may have at most ``window``
bytes of DATA unacknowledged; the receiver returns CREDIT as it drains bytes into its socket.
Each side announces the window it grants in HELLO / WELCOME.

This module turns frames into bytes and bytes into frames. It imports no asyncio and no socket;
decoding any byte string either yields frames or raises :class:`ProtocolError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack

VERSION = 1
DEFAULT_WINDOW = 256 * 1024
MAX_STREAM_ID = 2**31 - 1
MAX_WINDOW = 2**31 - 1
MAX_TEXT = 4096
MAX_MESSAGE = 16 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent bytes that are not valid molehill frames."""


# Frame type numbers on the wire. Never renumber: agents and relays of other versions meet.
HELLO, WELCOME, ERROR, OPEN, DATA, END, RESET, CREDIT, PING, PONG, GOAWAY = range(1, 12)


@dataclass(slots=True)
class Hello:
    """Agent -> relay: the first frame of a session."""

    TYPE: ClassVar[int] = HELLO
    version: int
    name: str  # requested public name, "" for a random one
    token: str
    resume: str  # resume token from an earlier welcome, "" for none
    window: int  # receive window this agent grants per stream
    # Tunnel settings the relay enforces: basic_auth ("user:password"), allow / deny (lists of
    # CIDR), takeover (bool: replace this token's own live tunnel of the same name).
    options: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> list[Any]:
        return [self.version, self.name, self.token, self.resume, self.window, self.options]


@dataclass(slots=True)
class Welcome:
    """Relay -> agent: the tunnel is live at ``url``."""

    TYPE: ClassVar[int] = WELCOME
    name: str
    url: str
    resume: str  # present this to get the same name back after a reconnect
    lease: float  # seconds the name is held for us after a disconnect
    ping_interval: float
    window: int  # receive window the relay grants per stream

    def fields(self) -> list[Any]:
        return [self.name, self.url, self.resume, self.lease, self.ping_interval, self.window]


@dataclass(slots=True)
class Error:
    """Relay -> agent: the session is refused; ``code`` is machine-readable."""

    TYPE: ClassVar[int] = ERROR
    code: str
    message: str

    def fields(self) -> list[Any]:
        return [self.code, self.message]


@dataclass(slots=True)
class Open:
    """Relay -> agent: a public client connected; open stream ``stream`` to the local app."""

    TYPE: ClassVar[int] = OPEN
    stream: int
    client_host: str
    client_port: int

    def fields(self) -> list[Any]:
        return [self.client_host, self.client_port]


@dataclass(slots=True)
class Data:
    """Bytes of a stream, carried raw."""

    TYPE: ClassVar[int] = DATA
    stream: int
    data: bytes

    def fields(self) -> list[Any]:
        return [self.data]


@dataclass(slots=True)
class End:
    """The sender will send no more DATA on this stream (half close)."""

    TYPE: ClassVar[int] = END
    stream: int

    def fields(self) -> list[Any]:
        return []


@dataclass(slots=True)
class Reset:
    """Abort a stream; ``code`` is machine-readable, ``message`` is for people."""

    TYPE: ClassVar[int] = RESET
    stream: int
    code: str
    message: str

    def fields(self) -> list[Any]:
        return [self.code, self.message]


@dataclass(slots=True)
class Credit:
    """The receiver drained ``amount`` bytes of this stream: the sender may send that many more."""

    TYPE: ClassVar[int] = CREDIT
    stream: int
    amount: int

    def fields(self) -> list[Any]:
        return [self.amount]


@dataclass(slots=True)
class Ping:
    """Heartbeat; the peer answers with a Pong carrying the same payload."""

    TYPE: ClassVar[int] = PING
    payload: int

    def fields(self) -> list[Any]:
        return [self.payload]


@dataclass(slots=True)
class Pong:
    """Answer to a Ping."""

    TYPE: ClassVar[int] = PONG
    payload: int

    def fields(self) -> list[Any]:
        return [self.payload]


@dataclass(slots=True)
class GoAway:
    """Relay -> agent: the relay is shutting down."""

    TYPE: ClassVar[int] = GOAWAY
    reason: str

    def fields(self) -> list[Any]:
        return [self.reason]


Frame = Hello | Welcome | Error | Open | Data | End | Reset | Credit | Ping | Pong | GoAway
_SESSION_FRAMES = (Hello, Welcome, Error, Ping, Pong, GoAway)
_packer = msgpack.Packer(use_bin_type=True)


def encode(frame: Frame) -> bytes:
    """Serialise one frame."""
    stream = getattr(frame, "stream", 0)
    return _packer.pack([frame.TYPE, stream, *frame.fields()])


def encode_data(stream: int, data: bytes) -> bytes:
    """Serialise a DATA frame without building a Data object."""
    return data_prefix(stream, len(data)) + data


_U8, _U16, _U32 = struct.Struct(">B"), struct.Struct(">H"), struct.Struct(">I")


def data_prefix(stream: int, size: int) -> bytes:
    """The msgpack bytes of ``[DATA, stream, <bin of size>]`` up to the payload itself.

    The hot path sends this prefix and the payload as separate pieces, so a large body is
    copied once (into the websocket message), not once more into a frame first.
    """
    if stream < 0x80:
        sid = _U8.pack(stream)
    elif stream < 0x100:
        sid = b"\xcc" + _U8.pack(stream)
    elif stream < 0x10000:
        sid = b"\xcd" + _U16.pack(stream)
    else:
        sid = b"\xce" + _U32.pack(stream)
    if size < 0x100:
        length = b"\xc4" + _U8.pack(size)
    elif size < 0x10000:
        length = b"\xc5" + _U16.pack(size)
    else:
        length = b"\xc6" + _U32.pack(size)
    return b"\x93\x05" + sid + length


def encode_credit(stream: int, amount: int) -> bytes:
    """Serialise a CREDIT frame without building a Credit object (the hot path)."""
    return _packer.pack([CREDIT, stream, amount])


# Field types per frame type, checked on decode. str means text; float accepts ints too.
_SCHEMA: dict[int, tuple[Any, tuple[type, ...]]] = {
    HELLO: (Hello, (int, str, str, str, int, dict)),
    WELCOME: (Welcome, (str, str, str, float, float, int)),
    ERROR: (Error, (str, str)),
    OPEN: (Open, (str, int)),
    DATA: (Data, (bytes,)),
    END: (End, ()),
    RESET: (Reset, (str, str)),
    CREDIT: (Credit, (int,)),
    PING: (Ping, (int,)),
    PONG: (Pong, (int,)),
    GOAWAY: (GoAway, (str,)),
}


def _check_field(value: Any, kind: Any, type_name: str) -> Any:
    if kind is float:
        if type(value) not in (int, float):
            raise ProtocolError(f"{type_name}: expected a number, got {type(value).__name__}")
        return float(value)
    if type(value) is not kind:
        raise ProtocolError(f"{type_name}: expected {kind.__name__}, got {type(value).__name__}")
    if kind is str and len(value) > MAX_TEXT:
        raise ProtocolError(f"{type_name}: text field longer than {MAX_TEXT}")
    if kind is dict and (len(value) > 32 or not all(type(k) is str for k in value)):
        raise ProtocolError(f"{type_name}: options must be a small map with text keys")
    if kind is int and not 0 <= value <= 2**63:
        raise ProtocolError(f"{type_name}: integer out of range")
    return value


def _build(item: Any) -> Frame:
    if type(item) is not list or len(item) < 2:
        raise ProtocolError("a frame must be an array [type, stream, ...]")
    kind, stream = item[0], item[1]
    if type(kind) is not int or type(stream) is not int:
        raise ProtocolError("frame type and stream id must be integers")
    if kind == DATA and len(item) == 3 and type(item[2]) is bytes and 0 < stream <= MAX_STREAM_ID:
        return Data(stream, item[2])  # fast path for the commonest frame
    if kind == HELLO and len(item) == 7:
        item = [*item, {}]  # agents of 0.1.0 sent no options: they asked for none
    try:
        cls, types = _SCHEMA[kind]
    except KeyError:
        raise ProtocolError(f"unknown frame type {kind}") from None
    name = cls.__name__
    if len(item) != 2 + len(types):
        raise ProtocolError(f"{name}: expected {len(types)} fields, got {len(item) - 2}")
    fields = [_check_field(v, t, name) for v, t in zip(item[2:], types, strict=True)]
    if cls in _SESSION_FRAMES:
        if stream != 0:
            raise ProtocolError(f"{name} belongs to the session, stream id must be 0")
        frame: Frame = cls(*fields)
        return frame
    if not 0 < stream <= MAX_STREAM_ID:
        raise ProtocolError(f"{name}: stream id {stream} out of range")
    if kind == CREDIT and not 0 < int(fields[0]) <= MAX_WINDOW:
        raise ProtocolError(f"Credit: amount {fields[0]} out of range")
    frame = cls(stream, *fields)
    return frame


def array_header(n: int) -> bytes:
    """The msgpack header of an array of ``n`` items: a message's first bytes."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def batch(encoded: list[bytes], frames: int | None = None) -> bytes:
    """One websocket message: a msgpack array holding already-encoded frames.

    ``encoded`` may hold frames in several pieces; ``frames`` then says how many frames.
    """
    n = len(encoded) if frames is None else frames
    return b"".join([array_header(n), *encoded])


def encode_message(*frames: Frame) -> bytes:
    """One websocket message holding ``frames``."""
    return batch([encode(frame) for frame in frames])


class FrameDecoder:
    """Turns websocket messages into frames; a frame never spans two messages."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self.max_message = max_message

    def decode(self, message: bytes) -> list[Frame]:
        """Return the frames in one message, or raise ProtocolError."""
        if not message:
            raise ProtocolError("empty message")
        if len(message) > self.max_message:
            raise ProtocolError(f"message larger than {self.max_message} bytes")
        try:
            items = msgpack.unpackb(message, raw=False, use_list=True, strict_map_key=True)
        except Exception as exc:  # msgpack raises many types; the contract is one.
            raise ProtocolError(f"undecodable message: {exc.__class__.__name__}: {exc}") from None
        if type(items) is not list or not items:
            raise ProtocolError("a message must be a non-empty array of frames")
        return [_build(item) for item in items]


def decode_all(message: bytes) -> list[Frame]:
    """Decode one message (tests and one-off use)."""
    return FrameDecoder().decode(message)
