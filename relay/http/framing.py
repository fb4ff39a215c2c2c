"""HTTP/1.1 message framing over a byte stream (sans-I/O): heads, body bytes, message ends.

Theory of operation
-------------------
A tunnel carries a connection's bytes unchanged, but both ends need to know where each message
starts and ends: the relay rewrites every request head (X-Forwarded-*) and rejects malformed or
ambiguous requests; the agent times each exchange for the request log. :class:`Http1Framer`
reads one direction of a connection and yields, in order:

* a :class:`RequestHead` or :class:`ResponseHead` (validated by httptools),
* body bytes exactly as they arrived (chunk sizes, extensions and trailers included),
* :data:`MESSAGE_END` when the message is complete.

The framer never re-encodes a body: it only counts through it (Content-Length) or steps over
chunk headers (chunked), so a body of any size passes with bounded memory. After an upgrade
(WebSocket) or CONNECT, everything is raw bytes.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

import httptools

MAX_HEAD: Final = 64 * 1024
MAX_HEADERS: Final = 100
_MAX_CHUNK_LINE: Final = 4096
_NO_BODY_STATUS: Final = frozenset({204, 304})


class HttpError(Exception):
    """The peer sent something that is not acceptable HTTP/1.1; ``status`` is what to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _End:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MESSAGE_END"


MESSAGE_END: Final = _End()


@dataclass(slots=True)
class RequestHead:
    """A parsed request head; ``raw`` is the head exactly as received, final CRLF included."""

    method: str
    target: bytes
    version: str
    raw: bytes
    host: str | None
    upgrade: bool
    has_forwarded: bool  # carries X-Forwarded-* lines a client could have forged


@dataclass(slots=True)
class ResponseHead:
    """A parsed response head."""

    status: int
    raw: bytes
    answers_upgrade: bool = False  # the request it answers asked for an upgrade


Item = RequestHead | ResponseHead | bytes | _End


class _Silent:
    """httptools protocol with no callbacks: validation only, no Python work per header."""

    __slots__ = ()


_SILENT: Final = _Silent()


def _header_values(lowered_head: bytes, name: bytes) -> list[bytes]:
    """Values of header ``name`` (lowercase) in a lowercased, validated head."""
    values = []
    needle = b"\r\n" + name + b":"
    pos = lowered_head.find(needle)
    while pos != -1:
        start = pos + len(needle)
        end = lowered_head.find(b"\r\n", start)
        values.append(lowered_head[start:end].strip(b" \t"))
        pos = lowered_head.find(needle, end)
    return values


# States of a framer.
_HEAD, _FIXED, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_TRAILER, _UNTIL_CLOSE, _RAW, _WAIT = range(8)
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


class Http1Framer:
    """Frames one direction of an HTTP/1.1 connection; see the module docstring."""

    def __init__(
        self,
        kind: str,
        *,
        max_head: int = MAX_HEAD,
        max_headers: int = MAX_HEADERS,
    ) -> None:
        if kind not in ("request", "response"):
            raise ValueError(kind)
        self._is_request = kind == "request"
        self._max_head = max_head
        self._max_headers = max_headers
        self._state = _HEAD
        self._buf = b""
        self._remaining = 0
        self._upgrade_next = False  # wait for the upgrade's answer after this message
        # Response side: the methods of requests still awaiting a response, oldest first.
        self._pending_methods: deque[tuple[str, bool]] = deque()

    @property
    def raw(self) -> bool:
        """True once the connection switched protocols: everything is opaque bytes."""
        return self._state == _RAW

    @property
    def waiting_for_upgrade(self) -> bool:
        """Request side: an upgrade was asked for; bytes are held until it is answered."""
        return self._state == _WAIT

    def upgrade_accepted(self) -> bytes:
        """The peer switched protocols (101): return the held bytes; everything is raw now."""
        self._state = _RAW
        held, self._buf = self._buf, b""
        return held

    def upgrade_refused(self) -> list[Item]:
        """The upgrade was answered without 101: the connection stays HTTP."""
        self._state = _HEAD
        return self.receive(b"")

    @property
    def pending_responses(self) -> int:
        """Response side: requests sent that have not had their final response yet."""
        return len(self._pending_methods)

    @property
    def between_messages(self) -> bool:
        """True when no message is partly received."""
        return self._state == _HEAD and not self._buf

    def expect_response_to(self, method: str, upgrade: bool = False) -> None:
        """Response side: a request with ``method`` was sent, so a response will follow."""
        self._pending_methods.append((method, upgrade))

    def receive(self, data: bytes) -> list[Item]:
        """Feed bytes; return what they complete. Raises HttpError on malformed input."""
        state = self._state
        if state == _FIXED and len(data) < self._remaining:
            self._remaining -= len(data)  # the commonest case: a piece of a large body
            return [data]
        if state in (_RAW, _UNTIL_CLOSE):
            return [data] if data else []
        if state == _WAIT:
            self._hold(self._buf + data)
            return []
        items: list[Item] = []
        buf = self._buf + data if self._buf else data
        self._buf = b""
        pos = 0
        n = len(buf)
        while pos < n:
            state = self._state
            if state == _HEAD:
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
                head = buf[pos:end]
                pos = end
                items.append(self._parse_head(head))
                if self._state == _HEAD:
                    self._end_message(items)
            elif state == _FIXED:
                take = min(self._remaining, n - pos)
                items.append(buf[pos : pos + take] if take != n or pos else buf)
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._end_message(items)
            elif state in (_CHUNK_SIZE, _CHUNK_TRAILER):
                eol = buf.find(b"\r\n", pos)
                if eol == -1:
                    if n - pos > _MAX_CHUNK_LINE:
                        raise HttpError(400, "chunk header line too long")
                    self._buf = buf[pos:]
                    return items
                line = buf[pos:eol]
                items.append(buf[pos : eol + 2])
                pos = eol + 2
                if state == _CHUNK_TRAILER:
                    if not line:
                        self._end_message(items)
                    continue
                size_text = line.split(b";", 1)[0].rstrip(b" \t")
                if not _HEX.fullmatch(size_text):
                    raise HttpError(400, f"bad chunk size {size_text[:20]!r}")
                size = int(size_text, 16)
                if size == 0:
                    self._state = _CHUNK_TRAILER
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

    def _end_message(self, items: list[Item]) -> None:
        items.append(MESSAGE_END)
        self._state = _WAIT if self._upgrade_next else _HEAD
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

    # -- heads ------------------------------------------------------------------

    def _parse_head(self, head: bytes) -> RequestHead | ResponseHead:
        collector = _SILENT
        parser: Any = (
            httptools.HttpRequestParser(collector)
            if self._is_request
            else httptools.HttpResponseParser(collector)
        )
        upgraded = False
        try:
            parser.feed_data(head)
        except httptools.HttpParserUpgrade:
            upgraded = True
        except httptools.HttpParserError as exc:
            raise HttpError(400, f"malformed HTTP head: {exc}") from None
        lowered = head.lower()
        if lowered.count(b"\r\n") - 2 > self._max_headers:
            raise HttpError(431, f"more than {self._max_headers} header lines")
        if self._is_request:
            return self._request_head(parser, head, lowered, upgraded)
        return self._response_head(parser, head, lowered, upgraded)

    def _body_framing(self, lowered: bytes) -> None:
        """Set the state for the body that follows a head, from Content-Length and chunking."""
        lengths = _header_values(lowered, b"content-length")
        codings = _header_values(lowered, b"transfer-encoding")
        if codings:
            if lengths:
                raise HttpError(400, "both Content-Length and Transfer-Encoding")
            last = b",".join(codings).split(b",")[-1].strip(b" \t")
            if last != b"chunked":
                if self._is_request:
                    raise HttpError(400, "request Transfer-Encoding does not end in chunked")
                self._state = _UNTIL_CLOSE
                return
            self._state = _CHUNK_SIZE
            return
        if lengths:
            if len(lengths) > 1:
                raise HttpError(400, "more than one Content-Length header")
            if not lengths[0].isdigit() or len(lengths[0]) > 18:
                raise HttpError(400, "Content-Length is not a number")
            self._remaining = int(lengths[0])
            self._state = _FIXED if self._remaining else _HEAD
            return
        self._state = _HEAD if self._is_request else _UNTIL_CLOSE

    def _request_head(
        self,
        parser: httptools.HttpRequestParser,
        head: bytes,
        lowered: bytes,
        upgraded: bool,
    ) -> RequestHead:
        method = parser.get_method().decode("ascii")
        if method == "CONNECT":
            raise HttpError(400, "CONNECT is not supported through a tunnel")
        first_line_end = head.find(b"\r\n")
        target = head[len(method) + 1 : head.rfind(b" ", 0, first_line_end)]
        hosts = _header_values(lowered, b"host")
        if len(hosts) > 1:
            raise HttpError(400, "more than one Host header")
        host = None
        if hosts:
            start = lowered.find(b"\r\nhost:") + 7
            host = head[start : head.find(b"\r\n", start)].strip(b" \t").decode("latin-1")
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise HttpError(505, f"HTTP/{version} is not spoken here: use HTTP/1.1")
        if b"\r\ntransfer-encoding:" in lowered and version == "1.0":
            raise HttpError(400, "Transfer-Encoding in an HTTP/1.0 request")
        self._body_framing(lowered)
        # After this request, hold the connection until the response says whether it switched.
        self._upgrade_next = upgraded
        return RequestHead(
            method=method,
            target=target,
            version=version,
            raw=head,
            host=host,
            upgrade=upgraded,
            has_forwarded=b"\r\nx-forwarded-" in lowered,
        )

    def _response_head(
        self,
        parser: httptools.HttpResponseParser,
        head: bytes,
        lowered: bytes,
        upgraded: bool,
    ) -> ResponseHead:
        status = parser.get_status_code()
        if 100 <= status < 200:
            if status == 101 and self._pending_methods and self._pending_methods[0][1]:
                self._pending_methods.popleft()
                self._state = _RAW
                return ResponseHead(status, head, answers_upgrade=True)
            # Other interim responses (100 Continue, 103) precede the real one.
            return ResponseHead(status=status, raw=head)
        pending = self._pending_methods
        method, upgrade = pending.popleft() if pending else ("GET", False)
        if method == "HEAD" or status in _NO_BODY_STATUS:
            self._state = _HEAD
        else:
            self._body_framing(lowered)
        return ResponseHead(status, head, answers_upgrade=upgrade)


def forwarded_head(head: RequestHead, client_ip: str, proto: str, host: str | None = None) -> bytes:
    """The head with X-Forwarded-For/-Proto/-Host set by the relay (client-sent copies dropped).

    ``client_ip`` may be a chain ("a, b") when a trusted proxy's own header is carried on.
    """
    raw = head.raw
    if head.has_forwarded:
        lines = raw[:-2].split(b"\r\n")
        raw = b"\r\n".join(line for line in lines if line[:12].lower() != b"x-forwarded-") + b"\r\n"
    extra = (
        f"X-Forwarded-For: {client_ip}\r\nX-Forwarded-Proto: {proto}\r\n"
        f"X-Forwarded-Host: {host if host is not None else head.host or ''}\r\n\r\n"
    ).encode("latin-1")
    return raw[:-2] + extra


def header_value(head: RequestHead, name: bytes) -> str:
    """One header's value (lowercase ``name``), from the raw head; "" when absent."""
    lowered = head.raw.lower()
    pos = lowered.find(b"\r\n" + name + b":")
    if pos == -1:
        return ""
    start = pos + len(name) + 3
    return head.raw[start : head.raw.find(b"\r\n", start)].strip(b" \t").decode("latin-1")
