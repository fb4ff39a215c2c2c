"""Redaction at capture time: secrets in headers, query strings and JSON/form bodies are hidden.

Only what is written to disk (and so every export made from it) is redacted; the in-memory
record the running process holds keeps the original values. A secret the request carried is also
scrubbed wherever else the exchange repeats it (an app that echoes its request headers, a token
reflected into a redirect or an error page), as long as it is at least ``MIN_SECRET`` long.
Redaction never fails: a body it cannot parse is scanned for ``"key": "value"`` pairs instead, so a
truncated JSON body still loses its secrets.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, unquote_plus

MARKER = "[redacted]"
MIN_SECRET = 6  # shorter values ("1", "yes") would wipe ordinary text wherever they occur
_MARKER_BYTES = MARKER.encode()
_FORM_MARKER = quote(MARKER).encode()


class Redactor:
    """Replaces the values of the given header names and body/query keys (case-insensitive)."""

    def __init__(self, headers: frozenset[str], keys: frozenset[str]) -> None:
        self.headers = frozenset(h.lower() for h in headers)
        self.keys = frozenset(k.lower() for k in keys)
        # Most heads name none of these headers: one substring test each says so (no line split).
        # A name that contains another ("proxy-authorization") is found by that one's test.
        names = {h.encode("latin-1") for h in self.headers}
        self._header_names = tuple(
            sorted(n for n in names if not any(m != n and m in n for m in names))
        )
        alternatives = b"|".join(re.escape(k.encode()) for k in sorted(self.keys))
        # A JSON string member whose (quoted) name is one of the keys; the value may be cut short.
        self._json_pair = re.compile(
            rb'("(?i:' + alternatives + rb')"\s*:\s*)(?:"(?:[^"\\]|\\.)*(?:"|\\?$)|[^,}\]\s]+)'
            if self.keys
            else rb"(?!x)x"
        )
        self._json_value = re.compile(
            rb'"(?i:' + alternatives + rb')"\s*:\s*"((?:[^"\\]|\\.)*)"' if self.keys else rb"(?!x)x"
        )

    def head(self, raw: bytes, request: bool) -> bytes:
        """A raw head with secret header values (and secret query parameters) replaced."""
        names_one = self._names_one(raw)
        if not names_one and not (request and self.keys and b"?" in raw.partition(b"\r\n")[0]):
            return raw
        lines = raw.split(b"\r\n")
        if request and lines and self.keys:
            lines[0] = self._start_line(lines[0])
        for i in range(1, len(lines) if names_one else 1):
            name, sep, _ = lines[i].partition(b":")
            if sep and name.strip().decode("latin-1").lower() in self.headers:
                lines[i] = name + b": " + _MARKER_BYTES
        return b"\r\n".join(lines)

    def secrets(self, head: bytes, body: bytes, content_type: str) -> list[bytes]:
        """The secret values a request carries (longest first), to scrub them everywhere."""
        found: set[bytes] = set()
        lines = head.split(b"\r\n")
        for line in lines[1:] if self._names_one(head) else ():
            name, sep, value = line.partition(b":")
            if not sep or name.strip().decode("latin-1").lower() not in self.headers:
                continue
            value = value.strip()
            found.add(value)
            found.update(value.split(b" ", 1)[1:])  # "Bearer TOKEN": the token alone too
            for cookie in value.split(b";"):
                found.update(cookie.partition(b"=")[2:])
        if self.keys:
            parts = lines[0].split(b" ")
            query = parts[1].partition(b"?")[2] if len(parts) == 3 else b""
            kind = content_type.lower()
            forms = [query] + ([body] if "x-www-form-urlencoded" in kind else [])
            for data in forms:
                for piece in data.split(b"&"):
                    name, sep, value = piece.partition(b"=")
                    if sep and unquote_plus(name.decode("latin-1")).lower() in self.keys:
                        found.add(value)
                        found.add(unquote_plus(value.decode("latin-1")).encode("latin-1"))
            if "json" in kind or body.lstrip()[:1] in (b"{", b"["):
                try:
                    self._collect(json.loads(body), found)
                except (ValueError, RecursionError):
                    found.update(m.group(1) for m in self._json_value.finditer(body))
        return sorted((v for v in found if len(v) >= MIN_SECRET), key=len, reverse=True)

    def _names_one(self, head: bytes) -> bool:
        """Whether ``head`` may have a header to redact (False: it surely has none)."""
        low = head.lower()
        for name in self._header_names:  # noqa: SIM110 (any() over a generator: twice the cost)
            if name in low:
                return True
        return False

    @staticmethod
    def scrub(data: bytes, secrets: list[bytes]) -> bytes:
        """``data`` with every occurrence of each secret replaced by the marker."""
        for secret in secrets:
            if secret in data:
                data = data.replace(secret, _MARKER_BYTES)
        return data

    def _collect(self, value: Any, found: set[bytes]) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and key.lower() in self.keys and isinstance(item, str):
                    found.add(item.encode())
                    found.add(json.dumps(item)[1:-1].encode())  # as escaped in JSON text
                else:
                    self._collect(item, found)
        elif isinstance(value, list):
            for item in value:
                self._collect(item, found)

    def target(self, target: str) -> str:
        """A request target with secret query parameters replaced."""
        path, sep, query = target.partition("?")
        if not sep or not self.keys:
            return target
        return path + "?" + self._form(query.encode("latin-1")).decode("latin-1")

    def _start_line(self, line: bytes) -> bytes:
        parts = line.split(b" ")
        if len(parts) == 3:
            parts[1] = self.target(parts[1].decode("latin-1")).encode("latin-1")
        return b" ".join(parts)

    def body(self, body: bytes, content_type: str) -> bytes:
        """A body with the values of secret keys replaced (JSON or form-encoded; others as is)."""
        if not body or not self.keys:
            return body
        kind = content_type.lower()
        if "x-www-form-urlencoded" in kind:
            return self._form(body)
        if "text/event-stream" in kind:  # events' data is often JSON: its "key": value pairs
            return self._json_pair.sub(rb'\1"' + _MARKER_BYTES + rb'"', body)
        stripped = body.lstrip()
        if "json" in kind or stripped[:1] in (b"{", b"["):
            return self._json(body)
        return body

    def _form(self, data: bytes) -> bytes:
        pieces = data.split(b"&")
        changed = False
        for i, piece in enumerate(pieces):
            name, sep, _ = piece.partition(b"=")
            if sep and unquote_plus(name.decode("latin-1")).lower() in self.keys:
                pieces[i] = name + b"=" + _FORM_MARKER
                changed = True
        return b"&".join(pieces) if changed else data

    def _json(self, body: bytes) -> bytes:
        found = [False]
        try:
            cleaned = self._walk(json.loads(body), found)
        except (ValueError, RecursionError):
            return self._json_pair.sub(rb'\1"' + _MARKER_BYTES + rb'"', body)
        if not found[0]:
            return body  # nothing secret: keep the bytes exactly as they came
        return json.dumps(cleaned, ensure_ascii=False, separators=(",", ":")).encode()

    def _walk(self, value: Any, found: list[bool]) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if isinstance(key, str) and key.lower() in self.keys:
                    out[key] = MARKER
                    found[0] = True
                else:
                    out[key] = self._walk(item, found)
            return out
        if isinstance(value, list):
            return [self._walk(item, found) for item in value]
        return value
