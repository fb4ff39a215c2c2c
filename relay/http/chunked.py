"""The rules of chunked framing (RFC 9112 7.1): chunk-size lines, extensions and trailer lines."""

from __future__ import annotations

import re
from typing import Final

from relay.http.heads import TOKEN, HttpError

MAX_CHUNK_LINE: Final = 4096

# RFC 9110 5.6.4 quoted-string; RFC 9112 7.1 chunk lines.
_QUOTED: Final = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
CHUNK_LINE: Final = re.compile(
    rb"([0-9A-Fa-f]{1,16})(?:;" + TOKEN + rb"(?:=(?:" + TOKEN + rb"|" + _QUOTED + rb"))?)*"
)
# The value's class includes the optional whitespace after the colon: one run, no backtracking
# (a separate [ \t]* before it made a long line of spaces cost quadratic time).
_FIELD_LINE: Final = re.compile(rb"(" + TOKEN + rb"):[\t \x21-\x7e\x80-\xff]*")
_CONTROL: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# Fields a backend could take for the head's own if it merged trailers into the headers.
_HEAD_ONLY_FIELDS: Final = frozenset(
    {b"content-length", b"transfer-encoding", b"host", b"authorization", b"proxy-authorization"}
)


def chunk_size(line: bytes) -> int:
    """The size a chunk-size line (CRLF excluded) announces; HttpError when it breaks a rule."""
    match = CHUNK_LINE.fullmatch(line)
    if match is None:
        raise HttpError(400, _chunk_line_error(line))
    return int(match.group(1), 16)


def trailer_name(line: bytes) -> bytes:
    """The field name of a trailer line (RFC 9112 7.1.2: a field line like a header's)."""
    match = _FIELD_LINE.fullmatch(line)
    if match is None:
        raise HttpError(400, _trailer_error(line))
    return match.group(1)


def check_request_trailer(name: bytes) -> None:
    """Refuse a request trailer a backend could take for one of the head's own fields."""
    lowered = name.lower().replace(b"_", b"-")
    if lowered in _HEAD_ONLY_FIELDS or lowered.startswith(b"x-forwarded-"):
        raise HttpError(400, f"{name[:30]!r} is not allowed in a trailer")


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
    if colon and re.fullmatch(TOKEN, name) and _CONTROL.search(value):
        return "control character in a trailer field"
    return f"trailer line {line[:30]!r} is not a header field (name: value)"
