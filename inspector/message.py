"""A request to send again, as an object and as the HTTP message text `--edit` opens in $EDITOR.

The text is the request as HTTP shows it: the request line, ``Name: value`` header lines, an
empty line, then the body. Framing is recomputed when it is sent: a chunked request is chunked
again, any other body gets a Content-Length that matches it (so an edited body needs no count).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from relay.events import parse_header_lines

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VERSION = re.compile(r"HTTP/1\.[01]")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Headers a replay always recomputes: the framing is the body's own.
_FRAMING = {"content-length", "transfer-encoding"}
# Left out: the body is sent at once, and a "100 Continue" would only precede the answer.
_NOT_SENT = {"expect"}


class EditError(ValueError):
    """The edited message is not a request; ``line`` (1-based) is where it went wrong."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}")


@dataclass(slots=True)
class ReplayRequest:
    """Method, request target, headers in order (repeats kept) and the body's payload."""

    method: str
    target: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    version: str = "HTTP/1.1"

    @classmethod
    def from_head(cls, head: bytes, body: bytes) -> ReplayRequest:
        """From a raw request head (as captured) and the body's payload."""
        start = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(start) != 3:
            raise ValueError(f"not a request line: {' '.join(start)!r}")
        return cls(start[0], start[1], parse_header_lines(head), body, start[2])

    def copy(self) -> ReplayRequest:
        """A copy an edit cannot change (the headers are a list of their own)."""
        return ReplayRequest(self.method, self.target, list(self.headers), self.body, self.version)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for n, v in self.headers if n.lower() == wanted), None)

    def set_header(self, name: str, value: str) -> None:
        """Replace the first header of that name in place (others of that name go), or append."""
        wanted = name.lower()
        out: list[tuple[str, str]] = []
        done = False
        for n, v in self.headers:
            if n.lower() != wanted:
                out.append((n, v))
            elif not done:
                out.append((n, value))
                done = True
        if not done:
            out.append((name, value))
        self.headers = out

    def remove_headers(self, names: set[str]) -> None:
        self.headers = [(n, v) for n, v in self.headers if n.lower() not in names]

    @property
    def chunked(self) -> bool:
        return "chunked" in (self.header("transfer-encoding") or "").lower()

    def to_bytes(self) -> bytes:
        """The request on the wire: the body framed again (chunked in one chunk, or with a
        Content-Length that matches it)."""
        headers = [(n, v) for n, v in self.headers if n.lower() not in _NOT_SENT]
        if self.chunked:
            headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
            body = f"{len(self.body):x}\r\n".encode() + self.body + b"\r\n" if self.body else b""
            body += b"0\r\n\r\n"
        else:
            had_length = any(n.lower() == "content-length" for n, _ in headers)
            length = str(len(self.body))
            # The count stays where it was (the first one; repeats and a stray framing header go).
            out: list[tuple[str, str]] = []
            for n, v in headers:
                if n.lower() not in _FRAMING:
                    out.append((n, v))
                elif n.lower() == "content-length" and all(
                    k.lower() != "content-length" for k, _ in out
                ):
                    out.append((n, length))
            headers = out
            if not had_length and (self.body or self.method.upper() in ("POST", "PUT", "PATCH")):
                headers.append(("Content-Length", length))
            body = self.body
        lines = [f"{self.method} {self.target} {self.version}"]
        lines += [f"{n}: {v}" for n, v in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def head_bytes(self) -> bytes:
        data = self.to_bytes()
        return data[: data.index(b"\r\n\r\n") + 4]

    def to_text(self) -> str:
        """The message to edit (the body must be text: see ``editable``)."""
        lines = [f"{self.method} {self.target} {self.version}"]
        lines += [f"{n}: {v}" for n, v in self.headers]
        return "\n".join(lines) + "\n\n" + self.body.decode("utf-8")

    def editable(self) -> str | None:
        """Why this request cannot be edited as text, or None."""
        try:
            self.body.decode("utf-8")
        except UnicodeDecodeError:
            return (
                "its body is not text (not UTF-8); edit a copy with `molehill requests curl ID` "
                "instead"
            )
        return None


def from_text(text: str, original_body: bytes = b"") -> ReplayRequest:
    """Parse an edited message. Raises EditError naming the line.

    Editors end a file with a newline; if the original body did not, one trailing newline is
    taken off again, so an unedited body is sent unchanged.
    """
    head, sep, body = text.replace("\r\n", "\n").partition("\n\n")
    if not sep and head.endswith("\n"):
        head = head[:-1]
    lines = head.split("\n")
    first = lines[0].strip()
    if not first:
        raise EditError(1, "empty request line; expected e.g. 'POST /path HTTP/1.1'")
    parts = first.split(" ")
    if len(parts) not in (2, 3) or any(not p for p in parts):
        raise EditError(1, f"{first!r} is not a request line; expected 'METHOD TARGET HTTP/1.1'")
    method, target = parts[0], parts[1]
    version = parts[2] if len(parts) == 3 else "HTTP/1.1"
    if not _TOKEN.fullmatch(method):
        raise EditError(1, f"{method!r} is not a method (letters such as GET or POST)")
    if not (target.startswith("/") or target == "*" or "://" in target):
        raise EditError(1, f"{target!r} is not a request target; it starts with /, e.g. /api")
    if not target.isascii() or any(c.isspace() or ord(c) < 32 for c in target):
        raise EditError(1, f"{target!r} has spaces or non-ASCII characters; percent-encode them")
    if not _VERSION.fullmatch(version):
        raise EditError(1, f"{version!r} is not HTTP/1.1 or HTTP/1.0")
    headers: list[tuple[str, str]] = []
    for number, line in enumerate(lines[1:], start=2):
        name, colon, value = line.partition(":")
        if not colon:
            raise EditError(number, f"{line!r} is not a header; expected 'Name: value'")
        if not _TOKEN.fullmatch(name):
            raise EditError(number, f"{name!r} is not a header name (no spaces, no separators)")
        value = value.strip(" \t")
        if _BAD_VALUE.search(value):
            raise EditError(number, f"the value of {name} has control characters")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise EditError(number, f"the value of {name} has characters outside Latin-1") from None
        headers.append((name, value))
    data = body.encode("utf-8")
    if data.endswith(b"\n") and not original_body.endswith(b"\n"):
        data = data[:-1]
    return ReplayRequest(method, target, headers, data, version)
