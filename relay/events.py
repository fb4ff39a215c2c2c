"""What an agent reports: tunnel state changes, one record per HTTP exchange, and one record per
TCP connection of a TCP tunnel."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Re-exported with the other records; defined beside the sans-I/O readers that make it.
from relay.http.stream_message import StreamMessage as StreamMessage


@dataclass(slots=True)
class TunnelOpen:
    name: str
    url: str
    local: str
    event: str = "tunnel_open"


@dataclass(slots=True)
class Reconnecting:
    name: str
    reason: str
    attempt: int
    delay: float
    event: str = "reconnecting"


@dataclass(slots=True)
class Reconnected:
    name: str
    url: str
    attempt: int
    event: str = "reconnected"


@dataclass(slots=True)
class LinkChanged:
    """One link of an agent holding its tunnel through several relay nodes went up or down
    (``--relay`` given more than once); the tunnel stays online while any link is up."""

    name: str
    relay: str
    up: bool
    reason: str
    links_up: int
    links: int
    event: str = "link"


@dataclass(slots=True)
class TunnelClosed:
    name: str
    reason: str
    event: str = "closed"


@dataclass(slots=True)
class TunnelRefused:
    """The relay said no (name taken, bad token...): retrying would not help."""

    name: str
    code: str
    message: str
    event: str = "refused"


class MessageLog:
    """The messages of one upgraded connection or event stream, as they arrive, capped.

    The agent's thread appends; readers (the dashboard, the capture writer) on other threads
    only read ``messages`` (append-only) and the counters, so no lock is needed.
    """

    __slots__ = ("cap", "closed", "dropped", "messages", "note", "protocol")

    def __init__(self, protocol: str, cap: int) -> None:
        self.protocol = protocol  # "websocket" or "sse"
        self.cap = cap
        self.messages: list[StreamMessage] = []
        self.dropped = 0  # messages seen but not kept (over the cap)
        self.closed = False  # the connection ended: no more messages will come
        self.note = ""  # why messages stopped being read (a malformed frame), if they did

    def add(self, message: StreamMessage) -> None:
        if len(self.messages) < self.cap:
            self.messages.append(message)
        else:
            self.dropped += 1

    def __deepcopy__(self, memo: dict[int, object]) -> MessageLog:
        return self  # shared, never copied (dataclasses.asdict deep-copies what it finds)


@dataclass(slots=True)
class Capture:
    """The heads and the first bytes of the bodies of one exchange, for the details view.

    Heads are kept as the raw bytes and parsed only when someone looks: at thousands of
    requests a second, parsing every header into objects cost the dashboard a quarter of its
    time and gave the garbage collector hundreds of thousands of objects to walk.
    """

    request_head: bytes = b""
    response_head: bytes = b""
    request_body: bytes = b""
    response_body: bytes = b""
    request_truncated: bool = False
    response_truncated: bool = False
    # An upgraded connection's WebSocket messages, or an event stream's events: filled while
    # the connection lasts (the exchange itself is reported at the 101 or the stream's end).
    messages: MessageLog | None = None

    @property
    def request_headers(self) -> list[tuple[str, str]]:
        return parse_header_lines(self.request_head)

    @property
    def response_headers(self) -> list[tuple[str, str]]:
        return parse_header_lines(self.response_head)


def parse_header_lines(head: bytes) -> list[tuple[str, str]]:
    """Header lines of a raw head, in order, repeated ones too (the start line skipped)."""
    out = []
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            out.append((name, value.strip(" \t")))
    return out


@dataclass(slots=True)
class RequestRecord:
    """One request and its response, as the local app saw them."""

    time: float  # wall clock when the request head reached the agent
    method: str
    path: str
    status: int  # 0 when the exchange ended without a response
    duration_ms: float  # request head seen -> response complete (or switched protocols)
    bytes_in: int  # request bytes, head included
    bytes_out: int  # response bytes, head included
    client: str
    stream: int
    http_version: str = "1.1"
    ttfb_ms: float | None = None  # request head seen -> response head seen
    capture: Capture | None = None
    # The local app's share, from the request head written to its socket (on arrival, or when
    # the dial completed) to its first response byte and to its last; None without a response.
    app_ttfb_ms: float | None = None
    app_ms: float | None = None
    # What the agent added before the app could start (the dial): duration_ms - app_ms.
    overhead_ms: float | None = None
    # Why the local app gave no whole response: "refused", "timeout", "reset", "closed", "dns",
    # "unreachable", and a sentence naming its address. Empty when it answered.
    failure_kind: str = ""
    failure: str = ""
    event: str = "request"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("capture")
        for key in ("duration_ms", "ttfb_ms", "app_ttfb_ms", "app_ms", "overhead_ms"):
            if data[key] is not None:
                data[key] = round(data[key], 3)
        return data


@dataclass(slots=True)
class ConnectionRecord:
    """One connection through a TCP tunnel: reported once it has closed, listed while open."""

    time: float  # wall clock when the relay opened the stream
    client: str  # the visitor's address, as the relay saw it
    stream: int
    duration_ms: float  # opened -> closed
    bytes_in: int  # visitor -> local app
    bytes_out: int  # local app -> visitor
    # How it ended: "closed" (both sides finished), "visitor_reset", "app_reset",
    # "connect_failed", or "reset: CODE" (the relay's reason: idle_timeout, session_lost...);
    # empty while it is open.
    closed: str
    state: str = "closed"  # "open" in a listing of the connections still going
    event: str = "connection"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["duration_ms"] = round(self.duration_ms, 3)
        return data


AgentEvent = (
    TunnelOpen
    | Reconnecting
    | Reconnected
    | LinkChanged
    | TunnelClosed
    | TunnelRefused
    | RequestRecord
    | ConnectionRecord
)


def event_to_json(event: AgentEvent) -> dict[str, Any]:
    """The JSON object `molehill http --json` prints for an event."""
    if isinstance(event, RequestRecord):
        return event.to_json()
    data = asdict(event)
    data = {"event": data.pop("event"), **data}
    return data
