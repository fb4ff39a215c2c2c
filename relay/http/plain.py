"""The fast path for plain heads: one regular expression recognises and reads a usual head.

Most heads are plain: a common method, an origin-form target and ``Host`` as the first field (or
a status line), token names, values httptools takes, at most one Content-Length, no transfer
coding, no Upgrade field. For such a head one ``fullmatch`` both validates it and captures what
the framer needs, with no parser object and no other pass over the bytes. Each function returns
None for any other head, which then takes the full path (:mod:`relay.http.heads`), so the fast
path accepts a subset of what the full path accepts and reads the same values from it
(tests/unit/test_http_heads.py compares both on generated heads).

Field names are matched without regard to case by character classes, not the IGNORECASE flag;
runs of characters are possessive: what each stops at can never belong to it, so nothing is
retried (repeated groups are not: CPython 3.11 gets capture spans wrong inside possessive ones).
"""

from __future__ import annotations

import re
from typing import Final

from relay.http.heads import UNTIL_CLOSE, RequestHead


def _anycase(word: bytes) -> bytes:
    return b"".join(
        b"[%c%c]" % (c, c - 32) if 97 <= c <= 122 else re.escape(bytes([c])) for c in word
    )


_TOKEN: Final = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]"
_VALUE: Final = rb"[\t \x21-\x7e\x80-\xff]*+"  # what httptools takes: no control but HTAB
_LENGTH: Final = _anycase(b"content-length:") + rb"[ \t]*+([0-9]{1,18})[ \t]*+\r\n"
_HOST, _CONTENT_LENGTH, _TRANSFER_ENCODING, _UPGRADE = (
    _anycase(name) for name in (b"host:", b"content-length:", b"transfer-encoding:", b"upgrade:")
)

# Requests: Host first, then fields that are not a second Host, a Transfer-Encoding or an
# Upgrade, and Content-Length lines (a second one is looked for only when there is one). The
# groups note Authorization (a second one is the full path's to refuse) and X-Forwarded-* (the
# relay drops them).
_REQUEST_FIELD: Final = (
    rb"(?!" + b"|".join((_HOST, _CONTENT_LENGTH, _TRANSFER_ENCODING, _UPGRADE)) + rb")"
    rb"(?:((?:" + _anycase(b"proxy-") + rb")?" + _anycase(b"authorization") + rb")(?=:)"
    rb"|(" + _anycase(b"x") + rb"[-_]" + _anycase(b"forwarded") + rb"[-_])" + _TOKEN + rb"*+"
    rb"|" + _TOKEN + rb"++):" + _VALUE + rb"\r\n"
)
_PLAIN_REQUEST: Final = re.compile(
    rb"(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH) (/[\x21-\x7e]*+) HTTP/1\.([01])\r\n"
    + (_HOST + rb"[ \t]*+(" + _VALUE + rb")\r\n")
    + (rb"(?:" + _REQUEST_FIELD + rb"|" + _LENGTH + rb")*\r\n")
)
# Responses: at most one Content-Length (matched on its own between the other fields), no
# Transfer-Encoding.
_FIELD: Final = (
    rb"(?!" + _CONTENT_LENGTH + rb"|" + _TRANSFER_ENCODING + rb")" + _TOKEN + rb"++:" + _VALUE
    + rb"\r\n"
)  # fmt: skip
_PLAIN_RESPONSE: Final = re.compile(
    rb"HTTP/1\.[01] ([0-9]{3})(?: "
    + _VALUE
    + rb")?\r\n"
    + (rb"(?:" + _FIELD + rb")*(?:" + _LENGTH + rb"(?:" + _FIELD + rb")*)?\r\n")
)
# What the agent's observer reads of a request the relay has validated: no character checks.
_LINE: Final = (
    rb"(?!" + b"|".join((_CONTENT_LENGTH, _TRANSFER_ENCODING, _UPGRADE)) + rb")[^\r]++\r\n"
)
_OBSERVED_REQUEST: Final = re.compile(
    rb"(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH) ([^ ]++) HTTP/1\.([01])\r\n"
    + (rb"(?:" + _LINE + rb")*(?:" + _LENGTH + rb"(?:" + _LINE + rb")*)?\r\n")
)
_METHODS: Final = {
    m: m.decode() for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH")
}
_VERSIONS: Final = {b"0": "1.0", b"1": "1.1"}


def _too_many_lines(head: bytes, max_headers: int) -> bool:
    # A start line takes 16 bytes at least and a header line 4: a head of at most
    # 4 * max_headers + 16 bytes cannot have too many lines, and is not counted.
    return len(head) > 4 * max_headers + 16 and head.count(b"\r\n") - 2 > max_headers


def plain_request(head: bytes, max_headers: int) -> tuple[RequestHead, int] | None:
    """A plain request head and its body's length; None for any other head."""
    match = _PLAIN_REQUEST.fullmatch(head)
    if match is None or (len(head) > 4 * max_headers + 16 and _too_many_lines(head, max_headers)):
        return None
    method, target, minor, host, authorization, forwarded, length = match.groups()
    if authorization is not None or length is not None:
        # Two sets of credentials, or two lengths, are the full path's to refuse.
        lowered = head.lower()
        if (
            lowered.count(b"\r\nauthorization:") > 1
            or lowered.count(b"\r\nproxy-authorization:") > 1
            or lowered.count(b"\r\ncontent-length:") > 1
        ):
            return None
    request = RequestHead(
        _METHODS[method],
        target,
        _VERSIONS[minor],
        head,
        host.rstrip(b" \t").decode("latin-1"),
        False,
        forwarded is not None,
    )
    return request, 0 if length is None else int(length)


def observed_request(head: bytes, max_headers: int) -> tuple[RequestHead, int] | None:
    """A request head the relay has validated, read for the agent's observer: method, target,
    version and body length (``host`` None, ``has_forwarded`` False); None when not plain."""
    match = _OBSERVED_REQUEST.fullmatch(head)
    if match is None:
        return None
    method, target, minor, length = match.group(1, 2, 3, 4)
    request = RequestHead(_METHODS[method], target, _VERSIONS[minor], head, None, False, False)
    return request, 0 if length is None else int(length)


def plain_response(head: bytes, max_headers: int) -> tuple[int, int] | None:
    """A plain response's status and body length (UNTIL_CLOSE: none given); None otherwise.

    A 101 is never plain: httptools pauses there, and refuses one without Upgrade.
    """
    match = _PLAIN_RESPONSE.fullmatch(head)
    if match is None or (len(head) > 4 * max_headers + 16 and _too_many_lines(head, max_headers)):
        return None
    status, length = match.group(1, 2)
    if status == b"101":
        return None
    return int(status), UNTIL_CLOSE if length is None else int(length)
