"""HTTP/1.1 message framing over a byte stream (sans-I/O): heads, body bytes, message ends.

Theory of operation
-------------------
A tunnel carries a connection's bytes unchanged, but both ends need to know where each message
starts and ends: the relay rewrites every request head (X-Forwarded-*) and rejects malformed or
ambiguous requests; the agent times each exchange for the request log. :class:`Http1Framer`
reads one direction of a connection and yields, in order:

* a :class:`RequestHead` or :class:`ResponseHead` (validated: :mod:`relay.http.heads`),
* body bytes exactly as they arrived (chunk sizes, extensions and trailers included),
* :data:`MESSAGE_END` when the message is complete,
* on the response side, :class:`Unsolicited` bytes: what arrives when no request awaits an answer.

Requests are held to a strict reading of RFC 9112 because the relay forwards them to a server
that parses them again: anything two parsers could frame differently (odd Transfer-Encoding,
loose chunk lines (:mod:`relay.http.chunked`), bare LF, a missing or doubled Host) is refused
rather than passed on (400, or 501 for a transfer coding other than one ``chunked``, like nginx).

The framer never re-encodes a body: it only counts through it (Content-Length) or steps over
chunk headers (chunked), so a body of any size passes with bounded memory. After an upgrade
(WebSocket), everything is raw bytes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from relay.http.chunked import MAX_CHUNK_LINE, check_request_trailer, chunk_size, trailer_name
from relay.http.forwarded import forwarded_head, header_list, header_value
from relay.http.heads import (
    CHUNKED,
    UNTIL_CLOSE,
    HttpError,
    RequestHead,
    ResponseHead,
    parse_request,
    parse_response,
    response_body,
)
from relay.http.plain import observed_request, plain_request, plain_response

MAX_HEAD: Final = 64 * 1024
MAX_HEADERS: Final = 100
_NO_BODY_STATUS: Final = frozenset({204, 304})


class _End:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MESSAGE_END"


MESSAGE_END: Final = _End()


@dataclass(slots=True)
class Unsolicited:
    """Response-side bytes sent while no request awaited an answer: a response to nothing."""

    data: bytes


Item = RequestHead | ResponseHead | bytes | _End | Unsolicited

# States of a framer.
_HEAD, _FIXED, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_TRAILER, _UNTIL_CLOSE, _RAW, _WAIT = range(8)
_UNSOLICITED = 8
_SWITCHED: Final = -3  # a head's body framing: none, the connection switched protocols
_PASS_THROUGH: Final = frozenset({_RAW, _UNTIL_CLOSE})
_LINES: Final = frozenset({_CHUNK_SIZE, _CHUNK_TRAILER})
_IDLE: Final = frozenset({_HEAD, _UNSOLICITED})


class Http1Framer:
    """Frames one direction of an HTTP/1.1 connection; see the module docstring.

    ``raw`` and ``waiting_for_upgrade`` are plain attributes (read them, never set them): the
    relay and the agent read them for every piece of every message.
    """

    def __init__(
        self,
        kind: str,
        *,
        max_head: int = MAX_HEAD,
        max_headers: int = MAX_HEADERS,
        strict: bool = True,
    ) -> None:
        if kind not in ("request", "response"):
            raise ValueError(kind)
        self._is_request = kind == "request"
        # strict=False: requests a relay has already validated are read, not judged again.
        self._plain_request = plain_request if strict else observed_request
        self._max_head = max_head
        self._max_headers = max_headers
        self._state = _HEAD
        self._buf = b""
        self._remaining = 0
        self._trailers = 0  # trailer lines of the current chunked message
        self._upgrade_next = False  # wait for the upgrade's answer after this message
        # Response side: the methods of requests still awaiting a response, oldest first.
        self._pending_methods: deque[tuple[str, bool]] = deque()
        self.raw = False  # the connection switched protocols: everything is opaque bytes
        # Request side: an upgrade was asked for; bytes are held until it is answered.
        self.waiting_for_upgrade = False

    def upgrade_accepted(self) -> bytes:
        """The peer switched protocols (101): return the held bytes; everything is raw now."""
        self._state = _RAW
        self.raw = True
        self.waiting_for_upgrade = False
        held, self._buf = self._buf, b""
        return held

    def upgrade_refused(self) -> list[Item]:
        """The upgrade was answered without 101: the connection stays HTTP."""
        self._state = _HEAD
        self.waiting_for_upgrade = False
        return self.receive(b"")

    @property
    def pending_responses(self) -> int:
        """Response side: requests sent that have not had their final response yet."""
        return len(self._pending_methods)

    @property
    def between_messages(self) -> bool:
        """True when no message is partly received (unsolicited bytes are no message)."""
        return self._state in _IDLE and not self._buf

    def expect_response_to(self, method: str, upgrade: bool = False) -> None:
        """Response side: a request with ``method`` was sent, so a response will follow."""
        self._pending_methods.append((method, upgrade))
        if self._state == _UNSOLICITED:
            self._state = _HEAD  # what comes next may be its answer

    def receive(self, data: bytes) -> list[Item]:
        """Feed bytes; return what they complete. Raises HttpError on malformed input."""
        state = self._state
        if state == _HEAD and not self._buf:
            # The usual read starts with a whole head (and most often holds its whole body).
            end = data.find(b"\r\n\r\n") + 4
            if (
                4 <= end <= self._max_head
                and data[0] not in (13, 10)
                and (self._is_request or self._pending_methods)
            ):
                try:
                    return self._message(data, end)
                except HttpError as exc:
                    exc.unframed = data
                    raise
        elif state == _FIXED and len(data) < self._remaining:
            self._remaining -= len(data)  # the commonest case: a piece of a large body
            return [data]
        if state in _PASS_THROUGH:
            return [data] if data else []
        if state == _WAIT:
            self._hold(self._buf + data)
            return []
        if state == _UNSOLICITED:
            return [Unsolicited(data)] if data else []
        buf = self._buf + data if self._buf else data
        self._buf = b""
        try:
            return self._frame(buf)
        except HttpError as exc:
            exc.unframed = buf
            raise

    def _message(self, data: bytes, end: int) -> list[Item]:
        """Frame ``data``, which starts with a whole head ending at ``end`` (the usual read)."""
        n = len(data)
        item, body = self._head(data if end == n else data[:end])
        items: list[Item] = [item]
        if body > 0 and n - end >= body:  # the whole body is here: no state for it
            items.append(data[end : end + body])
            end += body
            body = 0
        if body == 0:
            self._end_message(items)
        else:
            self._body(body)
        if end < n:
            items += self._frame(data[end:])
        return items

    def _head(self, head: bytes) -> tuple[Item, int]:
        """The item for a head and how its body is framed; a request's asks for an upgrade."""
        if self._is_request:
            parsed = self._plain_request(head, self._max_headers)
            request, body = parsed or parse_request(head, self._max_headers)
            # After this request, hold the connection until the response says whether it
            # switched protocols.
            self._upgrade_next = request.upgrade
            return request, body
        return self._response(head)

    def _body(self, body: int) -> None:
        """Enter the state for a body not all here (_SWITCHED: the state is already RAW)."""
        if body > 0:
            self._remaining = body
            self._state = _FIXED
        elif body == CHUNKED:
            self._state = _CHUNK_SIZE
        elif body == UNTIL_CLOSE:
            self._state = _UNTIL_CLOSE

    def _frame(self, buf: bytes) -> list[Item]:
        items: list[Item] = []
        pos = 0
        n = len(buf)
        while pos < n:
            state = self._state
            if state == _HEAD:
                if not self._is_request and not self._pending_methods:
                    # Nothing was asked: these bytes answer nothing, and neither does the rest.
                    self._state = _UNSOLICITED
                    items.append(Unsolicited(buf[pos:] if pos else buf))
                    return items
                if buf[pos] in (13, 10):  # RFC 9112: ignore empty lines before a request line
                    pos += 1
                    continue
                end = buf.find(b"\r\n\r\n", pos)
                if end == -1:
                    if n - pos > self._max_head:
                        raise HttpError(431, f"request head larger than {self._max_head} bytes")
                    self._buf = buf[pos:]
                    return items
                end += 4
                if end - pos > self._max_head:
                    raise HttpError(431, f"request head larger than {self._max_head} bytes")
                item, body = self._head(buf[pos:end] if pos or end != n else buf)
                items.append(item)
                pos = end
                if body > 0 and n - pos >= body:
                    items.append(buf[pos : pos + body])  # the whole body is here: no state
                    pos += body
                    body = 0
                if body == 0:
                    self._end_message(items)
                else:
                    self._body(body)
            elif state == _FIXED:
                take = min(self._remaining, n - pos)
                items.append(buf[pos : pos + take] if take != n or pos else buf)
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._end_message(items)
            elif state in _LINES:
                # RFC 9112 7.1: every chunk-size and trailer line ends in CRLF, and a line is
                # only passed on once it is complete and valid.
                nl = buf.find(b"\n", pos)
                if nl == -1:
                    if n - pos > MAX_CHUNK_LINE:
                        raise HttpError(400, "chunk header line too long")
                    self._buf = buf[pos:]
                    return items
                if nl == pos or buf[nl - 1] != 13:
                    raise HttpError(400, "bare LF in chunked framing: every line must end in CRLF")
                if nl - pos > MAX_CHUNK_LINE:
                    raise HttpError(400, "chunk header line too long")
                line = buf[pos : nl - 1]
                if state == _CHUNK_TRAILER:
                    if line:
                        self._trailer(line)
                    items.append(buf[pos : nl + 1])
                    pos = nl + 1
                    if not line:
                        self._end_message(items)
                    continue
                size = chunk_size(line)
                items.append(buf[pos : nl + 1])
                pos = nl + 1
                if size == 0:
                    self._state = _CHUNK_TRAILER
                    self._trailers = 0
                else:
                    self._state = _CHUNK_DATA
                    self._remaining = size + 2  # the data and its CRLF
            elif state == _CHUNK_DATA:
                before = self._remaining
                take = min(before, n - pos)
                piece = buf[pos : pos + take]
                pos += take
                self._remaining = after = before - take
                if after < 2 and not piece.endswith(b"\r\n"[max(0, 2 - before) : 2 - after]):
                    raise HttpError(400, "chunk data not followed by CRLF")
                items.append(piece)
                if not self._remaining:
                    self._state = _CHUNK_SIZE
            elif state == _WAIT:
                self._hold(buf[pos:])
                return items
            else:  # _RAW or _UNTIL_CLOSE reached inside this buffer
                items.append(buf[pos:])
                pos = n
        return items

    def _response(self, head: bytes) -> tuple[ResponseHead, int]:
        """The response and its body's framing (0 also for an interim response)."""
        plain = plain_response(head, self._max_headers)
        if plain is None:
            status, lowered = parse_response(head, self._max_headers)
            body = None
        else:
            status, body = plain
        pending = self._pending_methods
        if 100 <= status < 200:
            if status == 101 and pending and pending[0][1]:
                pending.popleft()
                self._state = _RAW
                self.raw = True
                return ResponseHead(status, head, True), _SWITCHED
            # Other interim responses (100 Continue, 103) precede the real one.
            return ResponseHead(status, head), 0
        method, upgrade = pending.popleft() if pending else ("GET", False)
        if method == "HEAD" or status in _NO_BODY_STATUS:
            return ResponseHead(status, head, upgrade), 0
        if body is None:
            body = response_body(lowered)
        return ResponseHead(status, head, upgrade), body

    def _trailer(self, line: bytes) -> None:
        name = trailer_name(line)
        self._trailers += 1
        if self._trailers > self._max_headers:
            raise HttpError(431, f"more than {self._max_headers} trailer lines")
        if self._is_request:
            check_request_trailer(name)

    def _end_message(self, items: list[Item]) -> None:
        items.append(MESSAGE_END)
        if self._upgrade_next:
            self._end_upgrade_request()
        else:
            self._state = _HEAD

    def _end_upgrade_request(self) -> None:
        """The request that asked for an upgrade is complete: wait for its answer."""
        self._state = _WAIT
        self.waiting_for_upgrade = True
        self._upgrade_next = False

    def _hold(self, data: bytes) -> None:
        # A client may not speak the new protocol before it is accepted; bound what it sends.
        if len(data) > self._max_head:
            raise HttpError(400, "too much data sent before the upgrade was answered")
        self._buf = data

    def eof(self) -> list[Item]:
        """The peer closed its sending side; return the end of a read-until-close message."""
        if self._state == _UNTIL_CLOSE:
            self._state = _HEAD
            return [MESSAGE_END]
        return []


__all__ = [
    "MAX_HEAD",
    "MAX_HEADERS",
    "MESSAGE_END",
    "Http1Framer",
    "HttpError",
    "Item",
    "RequestHead",
    "ResponseHead",
    "Unsolicited",
    "forwarded_head",
    "header_list",
    "header_value",
]
