"""WebSocket messages and SSE events of a stored exchange, as JSON, HAR and lines of text."""

from __future__ import annotations

import base64
import time
from typing import Any

from inspector.model import StoredExchange
from relay.events import StreamMessage

OPCODES = {"text": 1, "binary": 2, "close": 8, "ping": 9, "pong": 10}
PREVIEW_CHARS = 120  # of a message, in a line of `requests show`


def preview_text(m: StreamMessage) -> str | None:
    """The preview as text if it is UTF-8 (a cut character at its end dropped), else None;
    binary messages are never text (base64 in JSON, as HAR writes them; hex in lines)."""
    if m.kind == "binary":
        return None
    try:
        return m.preview.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and m.size > len(m.preview):
            return m.preview[: exc.start].decode("utf-8")
        return None


def message_json(m: StreamMessage) -> dict[str, Any]:
    item: dict[str, Any] = {
        "time": m.time,
        "direction": m.direction,
        "kind": m.kind,
        "size": m.size,
        "compressed": m.compressed,
        "preview_truncated": m.size > len(m.preview) or m.compressed,
    }
    text = preview_text(m)
    if text is not None:
        item["text"] = text
    else:
        item["base64"] = base64.b64encode(m.preview).decode()
    if m.kind == "event":
        item["event"] = m.event
        item["id"] = m.id
    return item


def messages_json(e: StoredExchange) -> dict[str, Any] | None:
    """``{"protocol", "kept", "dropped", "open", "note", "items"}``; None: the exchange has none."""
    if not e.messages_protocol:
        return None
    return {
        "protocol": e.messages_protocol,
        "kept": len(e.messages),
        "dropped": e.messages_dropped,
        "open": not e.messages_closed,
        "note": e.messages_note,
        "items": [message_json(m) for m in e.messages],
    }


def har_websocket_messages(e: StoredExchange) -> list[dict[str, Any]]:
    """Chrome DevTools' ``_webSocketMessages``: type send/receive, time (s), opcode, data.

    Binary previews are base64, as Chrome writes them; a preview is the message's first bytes.
    """
    out = []
    for m in e.messages:
        text = preview_text(m)
        data = text if text is not None else base64.b64encode(m.preview).decode()
        out.append(
            {
                "type": "send" if m.direction == "in" else "receive",
                "time": m.time,
                "opcode": OPCODES.get(m.kind, 0),
                "data": data,
            }
        )
    return out


def message_line(m: StreamMessage) -> str:
    """One message as a line: time, direction, kind, size, preview."""
    stamp = time.strftime("%H:%M:%S", time.localtime(m.time)) + f".{int(m.time * 1000) % 1000:03d}"
    arrow = "→" if m.direction == "in" else "←"
    kind = f"{m.kind} {m.event}" if m.kind == "event" else m.kind
    if m.compressed:
        kind += " (deflate)"
    text = preview_text(m)
    if text is None:
        shown = m.preview[:32].hex(" ") + (" …" if m.size > 32 else "")
    else:
        shown = text.replace("\n", "\\n")[:PREVIEW_CHARS]
        if len(shown) < m.size and (m.size > len(m.preview) or len(text) > PREVIEW_CHARS):
            shown += "…"
    if m.compressed and not m.preview:
        shown = "(compressed; no preview)"
    return f"{stamp} {arrow} {kind:<10} {m.size:>8} B  {shown}"


def messages_lines(e: StoredExchange) -> list[str]:
    """The messages section of `requests show`; [] when the exchange has none."""
    if not e.messages_protocol:
        return []
    what = "WebSocket messages" if e.messages_protocol == "websocket" else "Events"
    state = "connection open" if not e.messages_closed else "connection closed"
    lines = [f"-- {what}: {len(e.messages)} kept, {e.messages_dropped} not kept (cap); {state}"]
    if e.messages_note:
        lines.append(f"-- {e.messages_note}")
    lines += [message_line(m) for m in e.messages]
    return lines
