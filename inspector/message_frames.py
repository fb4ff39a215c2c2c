"""Messages of open connections on the capture pipe: one MessageUpdate per frame (sans-I/O).

The agent's writer redacts the previews before they leave (as :mod:`inspector.live_messages`
always did); the writer process decodes each update with its types and sizes checked, so a
damaged frame is refused with a reason (:class:`~inspector.pipe_codec.FrameError`), never stored.
"""

from __future__ import annotations

import msgpack

from inspector import pipe_codec as pc
from inspector.message_rows import MessageUpdate
from relay.http.stream_message import StreamMessage

MAX_MESSAGES = 100_000  # per update: far above any connection's cap
_TEXT = 64 * 1024  # bytes of a note, a kind, an event name or an id


def update_frame(update: MessageUpdate) -> bytes:
    messages = [
        (m.time, m.direction, m.kind, m.size, m.preview, m.compressed, m.event, m.id)
        for m in update.messages
    ]
    body = (
        update.exchange_id,
        update.protocol,
        update.first_seq,
        messages,
        update.dropped,
        update.note,
        update.closed,
    )
    return pc.frame(pc.MESSAGES, msgpack.packb(body, use_bin_type=True))


def decode_update(payload: bytes) -> MessageUpdate:
    try:
        body = msgpack.unpackb(
            payload,
            raw=False,
            use_list=True,
            max_str_len=_TEXT,
            max_bin_len=len(payload),
            max_array_len=MAX_MESSAGES,
            max_map_len=0,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises several kinds for damaged input
        raise pc.FrameError(f"messages frame: not readable ({type(exc).__name__})") from exc
    if not (isinstance(body, list) and len(body) == 7):
        raise pc.FrameError("messages frame: not a 7-item update")
    exchange_id, protocol, first_seq, rows, dropped, note, closed = body
    _check(
        _int(exchange_id) and _int(first_seq) and _int(dropped),
        "ids and counts must be non-negative integers",
    )
    _check(protocol in ("websocket", "sse"), "protocol must be websocket or sse")
    _check(isinstance(note, str) and isinstance(closed, bool), "bad note or closed flag")
    _check(isinstance(rows, list), "messages must be a list")
    return MessageUpdate(
        exchange_id, protocol, first_seq, [_message(r) for r in rows], dropped, note, closed
    )


def _message(row: object) -> StreamMessage:
    _check(isinstance(row, list) and len(row) == 8, "a message must have 8 fields")
    assert isinstance(row, list)
    at, direction, kind, size, preview, compressed, event, ident = row
    _check(isinstance(at, float) and at == at, "a message's time must be a number")
    _check(direction in ("in", "out"), "a message's direction must be in or out")
    _check(isinstance(kind, str) and _int(size), "bad kind or size")
    _check(isinstance(preview, bytes) and isinstance(compressed, bool), "bad preview")
    _check(isinstance(event, str) and isinstance(ident, str), "bad event or id")
    return StreamMessage(at, direction, kind, size, preview, compressed, event, ident)


def _int(value: object) -> bool:
    return type(value) is int and 0 <= value < 2**63


def _check(ok: bool, problem: str) -> None:
    if not ok:
        raise pc.FrameError(f"messages frame: {problem}")
