"""One stored exchange, and how a RequestRecord becomes one (redacted, bodies capped, hashed)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from inspector.redact import Redactor
from relay.events import RequestRecord, StreamMessage, parse_header_lines

_EMPTY_HEADERS: list[tuple[str, str]] = []
_BLANKS = " \t"  # around a header's value


@dataclass(slots=True)
class StoredBody:
    """A body as kept: maybe cut at the cap, with the full size and, when known, its SHA-256."""

    data: bytes = b""
    truncated: bool = False
    size: int = 0  # the full body's size in bytes (known even when cut)
    sha256: str | None = None  # of the full (redacted) body; None when the agent never had it all

    def text(self) -> str | None:
        """The body as text if it is valid UTF-8, else None (show it as hex, export it base64)."""
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            return None


@dataclass(slots=True)
class StoredExchange:
    """A captured request/response pair as the store holds it (secrets already replaced)."""

    id: int
    tunnel: str
    time: float
    method: str
    path: str
    status: int
    duration_ms: float
    ttfb_ms: float | None
    bytes_in: int
    bytes_out: int
    client: str
    http_version: str
    request_head: bytes
    response_head: bytes
    request_body: StoredBody
    response_body: StoredBody
    replay_of: int | None = None  # the exchange this one replays; None: it came through a tunnel
    target: str = ""  # the local app it went to (http://127.0.0.1:3000); "" when not known
    # WebSocket messages or SSE events (previews redacted): "websocket", "sse" or "" for none.
    messages_protocol: str = ""
    messages: list[StreamMessage] = field(default_factory=list)
    messages_dropped: int = 0  # over the per-connection cap: counted, not kept
    messages_note: str = ""  # why they stopped being read, if they did
    messages_closed: bool = True  # False while the connection is still open

    @property
    def request_headers(self) -> list[tuple[str, str]]:
        return parse_header_lines(self.request_head) if self.request_head else _EMPTY_HEADERS

    @property
    def response_headers(self) -> list[tuple[str, str]]:
        return parse_header_lines(self.response_head) if self.response_head else _EMPTY_HEADERS

    def request_header(self, name: str) -> str | None:
        return header_value(self.request_headers, name)

    def response_header(self, name: str) -> str | None:
        return header_value(self.response_headers, name)

    def held_bytes(self) -> int:
        """About what it holds in memory: heads, bodies, messages (what pages are bounded by)."""
        held = len(self.request_head) + len(self.response_head) + len(self.request_body.data)
        held += len(self.response_body.data)
        return held + sum(len(m.preview) + 64 for m in self.messages)

    def summary(self) -> dict[str, Any]:
        """The one-line view (`requests list --json`): no heads, no bodies."""
        return {
            "id": self.id,
            "tunnel": self.tunnel,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "duration_ms": round(self.duration_ms, 3),
            "ttfb_ms": None if self.ttfb_ms is None else round(self.ttfb_ms, 3),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "client": self.client,
            "http_version": self.http_version,
            "replay_of": self.replay_of,
            "target": self.target,
        }


def header_value(headers: list[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive), or None."""
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


def headers_text(request_head: bytes, response_head: bytes) -> str:
    """Every header as ``\\nname: value\\n`` lines, names lowered (for ``header:``)."""
    # The writer does this for every exchange: one pass over each head's lines, no tuples.
    lines = []
    for head in (request_head, response_head):
        if head:
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    lines.append(f"{name.lower()}: {value.strip(_BLANKS)}\n")
    return "\n" + "".join(lines)


def search_text(data: bytes) -> str:
    """What ``body:`` searches: a text body (UTF-8, no NUL), lowered; "" for a binary one.

    Binary bodies are left out of the search: their "text" would only fill the index. A body cut
    in the middle of a character (at the cap) is still text.
    """
    if b"\x00" in data:
        return ""
    try:
        return data.decode("utf-8").lower()
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":
            return data[: exc.start].decode("utf-8", "replace").lower()
        return ""


def dechunk(data: bytes) -> bytes:
    """The payload of a chunked body; tolerant, as a capture may stop mid-chunk."""
    out = bytearray()
    pos = 0
    while pos < len(data):
        eol = data.find(b"\r\n", pos)
        if eol == -1:
            break
        try:
            size = int(data[pos:eol].split(b";")[0].strip(), 16)
        except ValueError:
            return data  # not chunked after all: keep it as it is
        if size <= 0:
            break
        start = eol + 2
        out += data[start : start + size]
        pos = start + size + 2
    return bytes(out)


def payload(head: bytes, body: bytes) -> bytes:
    """The body's payload: chunked framing removed (what the app meant, what search and redaction
    see, what exports send; curl chunks it again when the head says chunked)."""
    if body and head:
        te = header_value(parse_header_lines(head), "transfer-encoding") or ""
        if "chunked" in te.lower():
            return dechunk(body)
    return body


def _head_facts(head: bytes) -> tuple[str, bool]:
    """A head's Content-Type (first one, "" if none) and whether it says chunked: one lowered
    copy and two finds instead of parsing every header line (the writer does this per exchange).
    The same answers as ``header_value(parse_header_lines(head), ...)``."""
    if not head:
        return "", False
    low = head.lower()
    values = []
    for name in (b"\r\ncontent-type:", b"\r\ntransfer-encoding:"):
        at = low.find(name)
        if at == -1:
            values.append("")
            continue
        start = at + len(name)
        end = low.find(b"\r\n", start)
        values.append(head[start : end if end != -1 else len(head)].decode("latin-1").strip(" \t"))
    return values[0], "chunked" in values[1].lower()


def _body(data: bytes, cut_by_agent: bool, full_size: int, cap: int) -> StoredBody:
    if cut_by_agent:  # the agent kept only the first bytes: the full body was never seen
        return StoredBody(data[:cap], True, max(full_size, len(data)), None)
    if len(data) > cap:
        return StoredBody(data[:cap], True, len(data), hashlib.sha256(data).hexdigest())
    return StoredBody(data, False, len(data), None)


def prepare(
    tunnel: str,
    record: RequestRecord,
    redactor: Redactor,
    body_cap: int,
    *,
    target: str = "",
    replay_of: int | None = None,
) -> StoredExchange:
    """What the store keeps of ``record``: redacted, bodies cut at ``body_cap``."""
    capture = record.capture
    req_head = resp_head = req_raw = resp_raw = b""
    req_cut = resp_cut = False
    if capture is not None:
        req_head, resp_head = capture.request_head, capture.response_head
        req_raw, resp_raw = capture.request_body, capture.response_body
        req_cut, resp_cut = capture.request_truncated, capture.response_truncated
    req_type, req_chunked = _head_facts(req_head)
    resp_type, resp_chunked = _head_facts(resp_head)
    if req_chunked and req_raw:
        req_raw = dechunk(req_raw)
    if resp_chunked and resp_raw:
        resp_raw = dechunk(resp_raw)
    secrets = redactor.secrets(req_head, req_raw, req_type)
    scrub = redactor.scrub
    return StoredExchange(
        id=0,
        tunnel=tunnel,
        time=record.time,
        method=record.method,
        path=scrub(redactor.target(record.path).encode("latin-1"), secrets).decode("latin-1"),
        status=record.status,
        duration_ms=record.duration_ms,
        ttfb_ms=record.ttfb_ms,
        bytes_in=record.bytes_in,
        bytes_out=record.bytes_out,
        client=record.client,
        http_version=record.http_version,
        request_head=scrub(redactor.head(req_head, request=True), secrets),
        response_head=scrub(redactor.head(resp_head, request=False), secrets),
        request_body=_body(
            scrub(redactor.body(req_raw, req_type), secrets),
            req_cut,
            record.bytes_in - len(req_head),
            body_cap,
        ),
        response_body=_body(
            scrub(redactor.body(resp_raw, resp_type), secrets),
            resp_cut,
            record.bytes_out - len(resp_head),
            body_cap,
        ),
        replay_of=replay_of,
        target=target,
    )
