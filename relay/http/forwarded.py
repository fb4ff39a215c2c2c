"""Reading header values from a request head, and the head as the relay forwards it."""

from __future__ import annotations

from relay.http.heads import ABSOLUTE_TARGET, RequestHead


def _is_forwarded_line(line: bytes) -> bool:
    return line[:12].lower().replace(b"_", b"-") == b"x-forwarded-"


def forwarded_head(head: RequestHead, client_ip: str, proto: str, host: str | None = None) -> bytes:
    """The head with X-Forwarded-For/-Proto/-Host set by the relay (client-sent copies dropped).

    Dropped are all the spellings a backend may read as the same field: ``X_Forwarded_For``
    becomes HTTP_X_FORWARDED_FOR in CGI/WSGI like ``X-Forwarded-For`` does. RFC 7239
    ``Forwarded`` is left alone: the relay does not set it. ``client_ip`` may be a chain
    ("a, b") when a trusted proxy's own header is carried on.
    """
    raw = head.raw if not head.absolute else origin_form_head(head)
    if head.has_forwarded:
        lines = raw[:-2].split(b"\r\n")
        raw = b"\r\n".join(line for line in lines if not _is_forwarded_line(line)) + b"\r\n"
    extra = (
        f"X-Forwarded-For: {client_ip}\r\nX-Forwarded-Proto: {proto}\r\n"
        f"X-Forwarded-Host: {host if host is not None else head.host or ''}\r\n\r\n"
    ).encode("latin-1")
    return raw[:-2] + extra


def origin_form_head(head: RequestHead) -> bytes:
    """An absolute-form request's head as a gateway forwards it: origin-form target, and a Host
    line that names the authority the relay routed by.

    RFC 9112 3.2.2: a proxy MUST replace the received Host with the target's host information.
    Passing the visitor's Host on would let anyone put the Host of their choice in front of an
    app that builds links from it (password-reset mails), past the relay's routing by Host.
    """
    raw, target = head.raw, head.target
    match = ABSOLUTE_TARGET.match(target)
    assert match is not None  # parse_request refused every other target
    rest = target[match.end() :]
    path = rest if rest[:1] == b"/" else b"/" + rest  # "" and "?q" have no path: "/" and "/?q"
    line_end = raw.find(b"\r\n")
    line = raw[: len(head.method) + 1] + path + raw[line_end - 9 : line_end]  # " HTTP/x.y"
    host_at = raw.lower().find(b"\r\nhost:", line_end)
    host_end = raw.find(b"\r\n", host_at + 2)
    authority = (head.host or "").encode("ascii")
    return line + raw[line_end:host_at] + b"\r\nHost: " + authority + raw[host_end:]


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
