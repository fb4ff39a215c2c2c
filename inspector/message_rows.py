"""The ``messages`` table: WebSocket messages and SSE events of stored exchanges, as rows."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from relay.events import StreamMessage

_ROW_OVERHEAD = 64  # bytes per message row besides its preview, for the slice estimates


@dataclass(slots=True)
class MessageUpdate:
    """New messages of one stored exchange (previews already redacted) and its log's state."""

    exchange_id: int
    protocol: str  # "websocket" or "sse"
    first_seq: int  # the position of messages[0] in the exchange's list
    messages: list[StreamMessage]
    dropped: int  # over the cap so far
    note: str
    closed: bool


def store_messages(db: sqlite3.Connection, updates: list[MessageUpdate]) -> int:
    """Write the updates inside the caller's transaction; about how many bytes they take.

    An exchange evicted meanwhile gets nothing (its messages would belong to no one).
    """
    added = 0
    for u in updates:
        cursor = db.execute(
            "UPDATE exchanges SET messages_protocol = ?, messages_dropped = ?, messages_note = ?, "
            "messages_closed = ? WHERE id = ?",
            (u.protocol, u.dropped, u.note, int(u.closed), u.exchange_id),
        )
        if not cursor.rowcount:
            continue
        db.executemany(
            "INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    u.exchange_id, u.first_seq + i, m.time, m.direction, m.kind, m.size,
                    m.preview, int(m.compressed), m.event, m.id,
                )
                for i, m in enumerate(u.messages)
            ],
        )  # fmt: skip
        added += sum(len(m.preview) + _ROW_OVERHEAD for m in u.messages)
    return added


def load_messages(db: sqlite3.Connection, exchange_id: int) -> list[StreamMessage]:
    rows = db.execute(
        "SELECT time, direction, kind, size, preview, compressed, event, event_id FROM messages "
        "WHERE exchange_id = ? ORDER BY seq",
        (exchange_id,),
    )
    return [
        StreamMessage(t, direction, kind, size, bytes(preview), bool(compressed), event, event_id)
        for t, direction, kind, size, preview, compressed, event, event_id in rows
    ]
