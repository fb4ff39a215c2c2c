"""What the observer reads past an exchange's head: WebSocket messages after a 101, SSE events.

One :class:`MessageWatch` per upgraded connection or event stream feeds the sans-I/O readers
(relay.http.ws_frames, relay.http.sse) and keeps what they find in a capped
:class:`~relay.events.MessageLog`. It only reads: the bytes have already gone on their way.
"""

from __future__ import annotations

import re
import time

from relay.events import MessageLog, parse_header_lines
from relay.http.sse import Dechunker, SseReader
from relay.http.ws_frames import WsFrameReader, negotiated_deflate

# Cheap enough for every captured response head: a full parse only when it matches.
_EVENT_STREAM = re.compile(rb"(?im)^content-type:[ \t]*text/event-stream")
_UPGRADE_WS = re.compile(rb"(?im)^upgrade:[ \t]*websocket[ \t]*\r?$")


class MessageWatch:
    """Reads one connection's messages into ``log``. Make one with :meth:`of_response`."""

    def __init__(
        self,
        log: MessageLog,
        client: WsFrameReader | None = None,
        server: WsFrameReader | None = None,
        events: SseReader | None = None,
        chunked: bool = False,
    ) -> None:
        self.log = log
        self.client = client
        self.server = server
        self.events = events
        self.dechunk = Dechunker() if chunked else None

    @classmethod
    def of_response(cls, head: bytes, status: int, cap: int) -> MessageWatch | None:
        """A watch for what follows this response head, or None when nothing is to be read."""
        if status == 101 and _UPGRADE_WS.search(head):
            extensions = ", ".join(
                v for k, v in parse_header_lines(head) if k.lower() == "sec-websocket-extensions"
            )
            return cls(
                MessageLog("websocket", cap),
                client=WsFrameReader("in", True, negotiated_deflate(extensions, True)),
                server=WsFrameReader("out", False, negotiated_deflate(extensions, False)),
            )
        if 200 <= status < 300 and _EVENT_STREAM.search(head):
            headers = {k.lower(): v.lower() for k, v in parse_header_lines(head)}
            if headers.get("content-encoding", "identity") != "identity":
                return None  # compressed events: reading them would mean inflating everything
            return cls(
                MessageLog("sse", cap),
                events=SseReader(),
                chunked="chunked" in headers.get("transfer-encoding", ""),
            )
        return None

    def client_bytes(self, data: bytes) -> None:
        if self.client is not None:
            self._read(self.client, data)

    def server_bytes(self, data: bytes) -> None:
        if self.server is not None:
            self._read(self.server, data)
        elif self.events is not None:
            if self.dechunk is not None:
                data = self.dechunk.feed(data)
                if self.dechunk.broken:
                    self._stop("the chunked framing could not be read")
                    return
            for message in self.events.feed(data, time.time()):
                self.log.add(message)

    def _read(self, reader: WsFrameReader, data: bytes) -> None:
        log = self.log
        if len(log.messages) >= log.cap:  # full: the rest are only counted, by their headers
            log.dropped += reader.count(data)
        else:
            for message in reader.feed(data, time.time()):
                log.add(message)
        if reader.broken:
            self._stop(f"a malformed frame ({reader.broken})")

    def _stop(self, why: str) -> None:
        if not self.log.note:
            self.log.note = f"messages stopped being read: {why}; the bytes still flow"
        self.client = self.server = None
        self.events = None
