"""One WebSocket message or server-sent event as the readers of ws_frames and sse report it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class StreamMessage:
    """One WebSocket message or one server-sent event, as it passed (never changed)."""

    time: float  # wall clock when its last byte arrived
    direction: str  # "in": visitor -> local app, "out": local app -> visitor
    kind: str  # WebSocket: text, binary, close, ping, pong; SSE: event
    size: int  # payload bytes (as sent: compressed when ``compressed``)
    preview: bytes  # the first bytes of the payload (unmasked; inflated when cheap, else b"")
    compressed: bool = False  # permessage-deflate: ``size`` is the compressed size
    event: str = ""  # SSE: the event type ("message" when none was named)
    id: str = ""  # SSE: the last event id
