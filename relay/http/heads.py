"""HTTP/1.1 request and response heads: what they are, and the full rules that judge them.

A request head is held to our strict checks and then to httptools; a response head to
httptools. Every refusal is worded here. Most heads take the fast path first
(:mod:`relay.http.plain`), which accepts only heads these rules accept and reads the same values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import httptools

# How a message's body is framed, as parse_request / response_body return it: a length (0 for
# none), or one of these.
CHUNKED: Final = -1
UNTIL_CLOSE: Final = -2

# RFC 9110 5.6.2 token; RFC 9112 3 request line.
TOKEN: Final = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_REQUEST_LINE: Final = re.compile(TOKEN + rb" ([\x21-\x7e]+) HTTP/[0-9]\.[0-9]")
ABSOLUTE_TARGET: Final = re.compile(rb"([A-Za-z][-+.0-9A-Za-z]*):(?://([^/?#]*))?")
_FORWARDED: Final = re.compile(rb"\r\nx[-_]forwarded[-_]")


class HttpError(Exception):
    """The peer sent something that is not acceptable HTTP/1.1; ``status`` is what to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        # Set by Http1Framer.receive: the bytes fed to it that no returned item carried, so a
        # caller that gives up framing can still pass every byte on.
        self.unframed = b""


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


class _Silent:
    """httptools protocol with no callbacks: validation only, no Python work per header."""

    __slots__ = ()


_SILENT: Final = _Silent()


def header_values(lowered_head: bytes, name: bytes) -> list[bytes]:
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


# -- requests ------------------------------------------------------------------------------------


def parse_request(head: bytes, max_headers: int) -> tuple[RequestHead, int]:
    """Validate a request head (final CRLF included); return it and how its body is framed."""
    lowered = head.lower()
    _check_request_bytes(head)
    parser: Any = httptools.HttpRequestParser(_SILENT)
    upgraded = False
    try:
        parser.feed_data(head)
    except httptools.HttpParserUpgrade:
        upgraded = True
    except httptools.HttpParserError as exc:
        if b"\r\ntransfer-encoding:" in lowered:
            _request_codings(lowered)  # to answer 501 where that is the reason
        raise HttpError(400, f"malformed HTTP head: {exc}") from None
    if lowered.count(b"\r\n") - 2 > max_headers:
        raise HttpError(431, f"more than {max_headers} header lines")
    method = parser.get_method().decode("ascii")
    if method == "CONNECT":
        raise HttpError(400, "CONNECT is not supported through a tunnel")
    version = parser.get_http_version()
    if version not in ("1.1", "1.0"):
        raise HttpError(505, f"HTTP/{version} is not spoken here: use HTTP/1.1")
    target = head[len(method) + 1 : head.find(b" ", len(method) + 1)]
    # RFC 9112 3.2: 400 for a request without exactly one Host (1.0 too: we route by it).
    hosts = header_values(lowered, b"host")
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
    body = CHUNKED if _request_codings(lowered) else _length(lowered, 0)
    request = RequestHead(
        method=method,
        target=target,
        version=version,
        raw=head,
        host=host,
        upgrade=upgraded,
        has_forwarded=_FORWARDED.search(lowered) is not None,
        absolute=absolute,
    )
    return request, body


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
    codings = header_values(lowered, b"transfer-encoding")
    if codings != [b"chunked"]:
        # Like nginx: anything but one "Transfer-Encoding: chunked" is not implemented here.
        raise HttpError(501, "request Transfer-Encoding other than exactly one 'chunked'")
    return True


def _length(lowered: bytes, absent: int) -> int:
    """The Content-Length of a head with no transfer coding; ``absent`` when there is none."""
    pos = lowered.find(b"\r\ncontent-length:")
    if pos == -1:
        return absent
    start = pos + 17
    end = lowered.find(b"\r\n", start)
    if lowered.find(b"\r\ncontent-length:", end) != -1:
        raise HttpError(400, "more than one Content-Length header")
    value = lowered[start:end].strip(b" \t")
    if not value.isdigit() or len(value) > 18:
        raise HttpError(400, "Content-Length is not a number")
    return int(value)


def _authority(target: bytes) -> str:
    """The authority of an absolute-form target (RFC 9112 3.2.2: it overrides Host)."""
    match = ABSOLUTE_TARGET.match(target)
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


# -- responses -----------------------------------------------------------------------------------


def parse_response(head: bytes, max_headers: int) -> tuple[int, bytes]:
    """Validate a response head (httptools' rules); return its status and the head lowercased."""
    lowered = head.lower()
    parser: Any = httptools.HttpResponseParser(_SILENT)
    try:
        parser.feed_data(head)
    except httptools.HttpParserUpgrade:
        pass
    except httptools.HttpParserError as exc:
        raise HttpError(400, f"malformed HTTP head: {exc}") from None
    if lowered.count(b"\r\n") - 2 > max_headers:
        raise HttpError(431, f"more than {max_headers} header lines")
    return parser.get_status_code(), lowered


def response_body(lowered: bytes) -> int:
    """How the body of a response that has one is framed (from its lowercased head)."""
    if lowered.find(b"\r\ntransfer-encoding:") == -1:
        return _length(lowered, UNTIL_CLOSE)
    codings = header_values(lowered, b"transfer-encoding")
    if lowered.find(b"\r\ncontent-length:") != -1:
        raise HttpError(400, "both Content-Length and Transfer-Encoding")
    last = b",".join(codings).split(b",")[-1].strip(b" \t")
    return CHUNKED if last == b"chunked" else UNTIL_CLOSE
