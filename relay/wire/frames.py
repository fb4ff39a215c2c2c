"""The molehill wire protocol's frames: their numbers, fields and limits (sans-I/O).

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
          agent -> GOAWAY(reason): a deliberate stop; the agent will not come back, so the
          relay frees its name at once instead of holding it for the lease. Only an admitted
          agent (after WELCOME) sends it; a connection lost without one is a crash or a cut
          network, and the name is held for the agent's resume token. A relay of an older
          version refuses the frame as unexpected and closes the link, which the stopping agent
          was about to do anyway: the name is then held as before, nothing worse.

Flow control is per stream and per direction, like HTTP/2: a side may have at most ``window``
bytes of DATA unacknowledged; the receiver returns CREDIT as it drains bytes into its socket.
Each side announces the window it grants in HELLO / WELCOME. The rules of order, ids and
windows live in :mod:`relay.wire.session` and :mod:`relay.wire.stream`; this module only says
what a frame is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

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
    """Relay -> agent: the relay is shutting down. Agent -> relay: the agent stops for good."""

    TYPE: ClassVar[int] = GOAWAY
    reason: str

    def fields(self) -> list[Any]:
        return [self.reason]


Frame = Hello | Welcome | Error | Open | Data | End | Reset | Credit | Ping | Pong | GoAway
_SESSION_FRAMES = (Hello, Welcome, Error, Ping, Pong, GoAway)
