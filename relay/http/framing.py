"""HTTP/1.1 message framing over a byte stream (sans-I/O): heads, body bytes, message ends.

Theory of operation
-------------------
A tunnel carries a connection's bytes unchanged, but both ends need to know where each message
starts and ends: the relay rewrites every request head (X-Forwarded-*) and rejects malformed or
ambiguous requests; the agent times each exchange for the request log. :class:`Http1Framer`
reads one direction of a connection and yields, in order:

* a :class:`RequestHead` or :class:`ResponseHead` (validated by httptools),
* body bytes exactly as they arrived (chunk sizes, extensions and trailers included),
* :data:`MESSAGE_END` when the message is complete,
* on the response side, :class:`Unsolicited` bytes: what arrives when no request awaits an answer.

Requests are held to a strict reading of RFC 9112 because the relay forwards them to a server
that parses them again: anything two parsers could frame differently (odd Transfer-Encoding,
loose chunk lines, bare LF, a missing or doubled Host) is refused rather than passed on
(400, or 501 for a transfer coding other than one ``chunked``, like nginx).

The framer never re-encodes a body: it only counts through it (Content-Length) or steps over
chunk headers (chunked), so a body of any size passes with bounded memory. After an upgrade
(WebSocket), everything is raw bytes.
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

# RFC 9110 5.6.2 token and 5.6.4 quoted-string; RFC 9112 7.1 chunk lines.
_TOKEN: Final = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_QUOTED: Final = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_LINE: Final = re.compile(
    rb"([0-9A-Fa-f]{1,16})(?:;" + _TOKEN + rb"(?:=(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?)*"
)
_FIELD_LINE: Final = re.compile(rb"(" + _TOKEN + rb"):[ \t]*[\t \x21-\x7e\x80-\xff]*")
_REQUEST_LINE: Final = re.compile(_TOKEN + rb" ([\x21-\x7e]+) HTTP/[0-9]\.[0-9]")
_ABSOLUTE: Final = re.compile(rb"([A-Za-z][-+.0-9A-Za-z]*):(?://([^/?#]*))?")
_FORWARDED: Final = re.compile(rb"\r\nx[-_]forwarded[-_]")
_CONTROL: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# Fields a backend could take for the head's own if it merged trailers into the headers.
_HEAD_ONLY_FIELDS: Final = frozenset(
    {b"content-length", b"transfer-encoding", b"host", b"authorization", b"proxy-authorization"}
)


class HttpError(Exception):
    """The peer sent something that is not acceptable HTTP/1.1; ``status`` is what to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        # Set by Http1Framer.receive: the bytes fed to it that no returned item carried, so a
        # caller that gives up framing can still pass every byte on.
        self.unframed = b""


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
    host: str | None  # the target's authority for an absolute-form target, else the Host header
    upgrade: bool
    has_forwarded: bool  # carries X-Forwarded-* lines (any spelling) a client could have forged
    absolute: bool = False  # the target is absolute-form (http://authority/path)


@dataclass(slots=True)
class ResponseHead:
    """A parsed response head."""

    status: int
    raw: bytes
    answers_upgrade: bool = False  # the request it answers asked for an upgrade


@dataclass(slots=True)
class Unsolicited:
    """Response-side bytes sent while no request awaited an answer: a response to nothing."""

    data: bytes


Item = RequestHead | ResponseHead | bytes | _End | Unsolicited


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


def _chunk_line_error(line: bytes) -> str:
    """Which rule a chunk-size line that failed to match breaks (the slow path: errors only)."""
    if b"\r" in line:
        return "bare CR in chunked framing: every line must end in CRLF"
    size, _, ext = line.partition(b";")
    if size != size.strip(b" \t") or not size:
        if size.strip(b" \t"):
            return f"whitespace around chunk size {size[:20]!r}: hex digits only"
        return f"chunk size missing in {line[:20]!r}"
    if not re.fullmatch(rb"[0-9A-Fa-f]+", size):
        return f"chunk size {size[:20]!r} is not hex digits only"
    if len(size) > 16:
        return "chunk size longer than 16 hex digits"
    if _CONTROL.search(ext):
        return "control character in a chunk extension"
    return f"chunk extension {ext[:30]!r} is not ;name[=value] (token or quoted-string)"


def _trailer_error(line: bytes) -> str:
    if b"\r" in line:
        return "bare CR in chunked framing: every line must end in CRLF"
    name, colon, value = line.partition(b":")
    if colon and re.fullmatch(_TOKEN, name) and _CONTROL.search(value):
        return "control character in a trailer field"
    return f"trailer line {line[:30]!r} is not a header field (name: value)"


# States of a framer.
_HEAD, _FIXED, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_TRAILER, _UNTIL_CLOSE, _RAW, _WAIT = range(8)
_UNSOLICITED = 8


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
        self._trailers = 0  # trailer lines of the current chunked message
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
        """True when no message is partly received (unsolicited bytes are no message)."""
        return self._state in (_HEAD, _UNSOLICITED) and not self._buf

    def expect_response_to(self, method: str, upgrade: bool = False) -> None:
        """Response side: a request with ``method`` was sent, so a response will follow."""
        self._pending_methods.append((method, upgrade))
        if self._state == _UNSOLICITED:
            self._state = _HEAD  # what comes next may be its answer

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
        if state == _UNSOLICITED:
            return [Unsolicited(data)] if data else []
        buf = self._buf + data if self._buf else data
        self._buf = b""
        try:
            return self._frame(buf)
        except HttpError as exc:
            exc.unframed = buf
            raise

    def _frame(self, buf: bytes) -> list[Item]:
        items: list[Item] = []
        pos = 0
        n = len(buf)
        while pos < n:
            state = self._state
            if state == _HEAD:
                if not self._pending_methods and not self._is_request:
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
                # RFC 9112 7.1: every chunk-size and trailer line ends in CRLF, and a line is
                # only passed on once it is complete and valid.
                nl = buf.find(b"\n", pos)
                if nl == -1:
                    if n - pos > _MAX_CHUNK_LINE:
                        raise HttpError(400, "chunk header line too long")
                    self._buf = buf[pos:]
                    return items
                if nl == pos or buf[nl - 1] != 13:
                    raise HttpError(400, "bare LF in chunked framing: every line must end in CRLF")
                if nl - pos > _MAX_CHUNK_LINE:
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
                match = _CHUNK_LINE.fullmatch(line)
                if match is None:
                    raise HttpError(400, _chunk_line_error(line))
                items.append(buf[pos : nl + 1])
                pos = nl + 1
                size = int(match.group(1), 16)
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

    def _trailer(self, line: bytes) -> None:
        """Check one trailer line (RFC 9112 7.1.2: a field line like a header's)."""
        match = _FIELD_LINE.fullmatch(line)
        if match is None:
            raise HttpError(400, _trailer_error(line))
        self._trailers += 1
        if self._trailers > self._max_headers:
            raise HttpError(431, f"more than {self._max_headers} trailer lines")
        if self._is_request:
            name = match.group(1).lower().replace(b"_", b"-")
            if name in _HEAD_ONLY_FIELDS or name.startswith(b"x-forwarded-"):
                raise HttpError(400, f"{match.group(1)[:30]!r} is not allowed in a trailer")

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
        lowered = head.lower()
        is_request = self._is_request
        if is_request:
            _check_request_bytes(head)
        collector = _SILENT
        parser: Any = (
            httptools.HttpRequestParser(collector)
            if is_request
            else httptools.HttpResponseParser(collector)
        )
        upgraded = False
        try:
            parser.feed_data(head)
        except httptools.HttpParserUpgrade:
            upgraded = True
        except httptools.HttpParserError as exc:
            if is_request and b"\r\ntransfer-encoding:" in lowered:
                _request_codings(lowered)  # to answer 501 where that is the reason
            raise HttpError(400, f"malformed HTTP head: {exc}") from None
        if lowered.count(b"\r\n") - 2 > self._max_headers:
            raise HttpError(431, f"more than {self._max_headers} header lines")
        if is_request:
            return self._request_head(parser, head, lowered, upgraded)
        return self._response_head(parser, head, lowered, upgraded)

    def _body_framing(self, lowered: bytes) -> None:
        """Set the state for the body that follows a head, from Content-Length and chunking."""
        chunked = _request_codings(lowered) if self._is_request else _response_codings(lowered)
        if chunked is None:
            self._state = _UNTIL_CLOSE
            return
        if chunked:
            self._state = _CHUNK_SIZE
            return
        lengths = _header_values(lowered, b"content-length")
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
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise HttpError(505, f"HTTP/{version} is not spoken here: use HTTP/1.1")
        target = head[len(method) + 1 : head.find(b" ", len(method) + 1)]
        # RFC 9112 3.2: 400 for a request without exactly one Host (1.0 too: we route by it).
        hosts = _header_values(lowered, b"host")
        if len(hosts) != 1:
            raise HttpError(400, "more than one Host header" if hosts else "no Host header")
        # One check of credentials must cover all of them: never check one and forward two.
        if b"authorization:" in lowered:
            if lowered.count(b"\r\nauthorization:") > 1:
                raise HttpError(400, "more than one Authorization header")
            if lowered.count(b"\r\nproxy-authorization:") > 1:
                raise HttpError(400, "more than one Proxy-Authorization header")
        absolute = target[:1] != b"/" and target != b"*"
        if absolute:
            host = _authority(target)
        else:
            start = lowered.find(b"\r\nhost:") + 7
            host = head[start : head.find(b"\r\n", start)].strip(b" \t").decode("latin-1")
        if version == "1.0" and b"\r\ntransfer-encoding:" in lowered:
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
            has_forwarded=_FORWARDED.search(lowered) is not None,
            absolute=absolute,
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


def _check_request_bytes(head: bytes) -> None:
    """Refuse what httptools might let through but a stricter parser would read otherwise."""
    crlf = head.count(b"\r\n")
    if head.count(b"\n") != crlf or head.count(b"\r") != crlf:
        raise HttpError(400, "bare CR or LF in the request head: lines must end in CRLF")
    if b"\x00" in head:
        raise HttpError(400, "NUL in the request head")
    if b"\r\n " in head or b"\r\n\t" in head:
        raise HttpError(400, "obs-fold: a header line starts with whitespace")
    # RFC 9112 3: method SP request-target SP HTTP-version, single spaces, visible characters.
    line = _REQUEST_LINE.fullmatch(head, 0, head.find(b"\r\n"))
    if line is None:
        raise HttpError(400, "malformed request line: method SP target SP HTTP/x.y")
    target = line.group(1)
    if target[:1] != b"/" and target != b"*":
        _authority(target)  # before httptools, to name the rule an absolute-form target breaks


def _request_codings(lowered: bytes) -> bool:
    """Whether a request body is chunked; refuse any other transfer coding (RFC 9112 6.1)."""
    if b"\r\ntransfer-encoding:" not in lowered:
        return False
    if b"\r\ncontent-length:" in lowered:
        raise HttpError(400, "both Content-Length and Transfer-Encoding")
    codings = _header_values(lowered, b"transfer-encoding")
    if codings != [b"chunked"]:
        # Like nginx: anything but one "Transfer-Encoding: chunked" is not implemented here.
        raise HttpError(501, "request Transfer-Encoding other than exactly one 'chunked'")
    return True


def _response_codings(lowered: bytes) -> bool | None:
    """Whether a response body is chunked; None: read it until the connection closes."""
    codings = _header_values(lowered, b"transfer-encoding")
    if not codings:
        return False
    if b"\r\ncontent-length:" in lowered:
        raise HttpError(400, "both Content-Length and Transfer-Encoding")
    last = b",".join(codings).split(b",")[-1].strip(b" \t")
    return True if last == b"chunked" else None


def _authority(target: bytes) -> str:
    """The authority of an absolute-form target (RFC 9112 3.2.2: it overrides Host)."""
    match = _ABSOLUTE.match(target)
    if match is None:
        raise HttpError(400, "request target is not origin-form, absolute-form or *")
    if match.group(1).lower() not in (b"http", b"https"):
        raise HttpError(400, f"absolute-form target with scheme {match.group(1)[:10]!r}")
    authority = match.group(2)
    if not authority:
        raise HttpError(400, "absolute-form target with an empty authority")
    if b"@" in authority:
        raise HttpError(400, "absolute-form target with userinfo")
    return authority.decode("ascii")


def _is_forwarded_line(line: bytes) -> bool:
    return line[:12].lower().replace(b"_", b"-") == b"x-forwarded-"


def forwarded_head(head: RequestHead, client_ip: str, proto: str, host: str | None = None) -> bytes:
    """The head with X-Forwarded-For/-Proto/-Host set by the relay (client-sent copies dropped).

    Dropped are all the spellings a backend may read as the same field: ``X_Forwarded_For``
    becomes HTTP_X_FORWARDED_FOR in CGI/WSGI like ``X-Forwarded-For`` does. RFC 7239
    ``Forwarded`` is left alone: the relay does not set it. ``client_ip`` may be a chain
    ("a, b") when a trusted proxy's own header is carried on.
    """
    raw = head.raw
    if head.has_forwarded:
        lines = raw[:-2].split(b"\r\n")
        raw = b"\r\n".join(line for line in lines if not _is_forwarded_line(line)) + b"\r\n"
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


def header_list(head: RequestHead, name: bytes) -> list[str]:
    """Every element of a list header (lowercase ``name``) over all its lines, in order.

    RFC 9110 5.3: several lines of one field are one comma-separated list; elements are
    stripped and empty ones dropped.
    """
    raw = head.raw
    lowered = raw.lower()
    needle = b"\r\n" + name + b":"
    out: list[str] = []
    pos = lowered.find(needle)
    while pos != -1:
        start = pos + len(needle)
        end = raw.find(b"\r\n", start)
        for element in raw[start:end].split(b","):
            element = element.strip(b" \t")
            if element:
                out.append(element.decode("latin-1"))
        pos = lowered.find(needle, end)
    return out
