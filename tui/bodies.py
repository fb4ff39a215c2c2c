"""Showing captured bodies: JSON pretty-printed, text as text, binary as a hex dump."""

from __future__ import annotations

import json

from inspector.model import dechunk

MAX_SHOWN = 16 * 1024


def header(headers: list[tuple[str, str]], name: str) -> str:
    name = name.lower()
    return next((v for k, v in headers if k.lower() == name), "")


def describe_body(data: bytes, headers: list[tuple[str, str]], truncated: bool) -> tuple[str, str]:
    """(kind, text) for a body: kind is 'json', 'text', 'binary' or 'empty'."""
    if "chunked" in header(headers, "transfer-encoding").lower():
        data = dechunk(data)
    if not data:
        return "empty", ""
    note = "\n… (capture truncated)" if truncated or len(data) > MAX_SHOWN else ""
    ctype = header(headers, "content-type").lower()
    encoding = header(headers, "content-encoding").lower()
    if encoding and encoding != "identity":
        return "binary", f"({encoding}-encoded body, {len(data)} bytes)\n" + hexdump(data) + note
    shown = data[:MAX_SHOWN]
    if "json" in ctype or shown[:1] in (b"{", b"["):
        try:
            return "json", json.dumps(json.loads(data), indent=2, ensure_ascii=False) + note
        except (ValueError, UnicodeDecodeError):
            pass
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError:
        return "binary", hexdump(shown) + note
    if sum(1 for c in text if ord(c) < 32 and c not in "\r\n\t") > len(text) // 20:
        return "binary", hexdump(shown) + note
    return "text", text + note


def hexdump(data: bytes, limit: int = 4096) -> str:
    lines = []
    for offset in range(0, min(len(data), limit), 16):
        row = data[offset : offset + 16]
        hexes = " ".join(f"{b:02x}" for b in row)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{offset:08x}  {hexes:<47}  {text}")
    if len(data) > limit:
        lines.append(f"… {len(data) - limit} more bytes")
    return "\n".join(lines)
