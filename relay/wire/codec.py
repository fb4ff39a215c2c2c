"""The molehill wire protocol's codec: frames to bytes here, and every name in one place (sans-I/O).

:mod:`relay.wire.frames` defines the frames (its docstring tells the protocol's theory of
operation); this module turns frames into bytes, a DATA frame as a small prefix and the payload
itself, never copied into a frame first; :mod:`relay.wire.decoding` turns bytes into frames (any
byte string either yields frames or raises :class:`ProtocolError`). Everything is importable from
here. No asyncio, no sockets.
"""

from __future__ import annotations

import struct

import msgpack

from relay.wire.decoding import (
    MAX_FIELDS,
    MAX_FRAMES,
    MAX_OPTION_ITEMS,
    MAX_OPTIONS,
    FrameDecoder,
    decode_all,
)
from relay.wire.frames import (
    CREDIT,
    DATA,
    DEFAULT_WINDOW,
    END,
    ERROR,
    GOAWAY,
    HELLO,
    MAX_MESSAGE,
    MAX_STREAM_ID,
    MAX_TEXT,
    MAX_WINDOW,
    OPEN,
    PING,
    PONG,
    RESET,
    VERSION,
    WELCOME,
    Credit,
    Data,
    End,
    Error,
    Frame,
    GoAway,
    Hello,
    Open,
    Ping,
    Pong,
    ProtocolError,
    Reset,
    Welcome,
)

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


__all__ = [
    "CREDIT", "DATA", "DEFAULT_WINDOW", "END", "ERROR", "GOAWAY", "HELLO", "MAX_FIELDS",
    "MAX_FRAMES", "MAX_MESSAGE", "MAX_OPTIONS", "MAX_OPTION_ITEMS", "MAX_STREAM_ID", "MAX_TEXT",
    "MAX_WINDOW", "OPEN", "PING", "PONG", "RESET", "VERSION", "WELCOME", "Credit", "Data", "End",
    "Error", "Frame", "FrameDecoder", "GoAway", "Hello", "Open", "Ping", "Pong", "ProtocolError",
    "Reset", "Welcome", "array_header", "batch", "data_prefix", "decode_all", "encode",
    "encode_credit", "encode_data", "encode_message",
]  # fmt: skip
