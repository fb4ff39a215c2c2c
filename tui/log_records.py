"""Rows of the request log that are more than a live record: history from the store, replays."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from inspector.model import StoredExchange
from relay.events import Capture, MessageLog, RequestRecord


@dataclass(slots=True)
class StoredRecord(RequestRecord):
    """A record that has (or will have) an id in the capture store.

    ``history``: read from the store when the dashboard opened (its heads and bodies are the
    stored, redacted ones). ``original``: for a replay, the row it replays."""

    exchange_id: int | None = None
    replay_of: int | None = None
    history: bool = False
    original: RequestRecord | None = None


def _as_captured(head: bytes, payload: bytes) -> bytes:
    """The store keeps chunked bodies de-chunked; a live capture has them framed, and the log's
    readers (details, replay) de-chunk what a chunked head announces: frame it again."""
    if not payload or b"chunked" not in head.lower():
        return payload
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)


def from_exchange(e: StoredExchange) -> StoredRecord:
    """A stored exchange as a history row (heads and bodies as stored: redacted)."""
    capture = Capture(
        request_head=e.request_head,
        response_head=e.response_head,
        request_body=_as_captured(e.request_head, e.request_body.data),
        response_body=_as_captured(e.response_head, e.response_body.data),
        request_truncated=e.request_body.truncated,
        response_truncated=e.response_body.truncated,
        messages=_stored_messages(e),
    )
    return StoredRecord(
        time=e.time,
        method=e.method,
        path=e.path,
        status=e.status,
        duration_ms=e.duration_ms,
        bytes_in=e.bytes_in,
        bytes_out=e.bytes_out,
        client=e.client,
        stream=0,
        http_version=e.http_version,
        ttfb_ms=e.ttfb_ms,
        capture=capture if e.request_head else None,
        exchange_id=e.id,
        replay_of=e.replay_of,
        history=True,
    )


def _stored_messages(e: StoredExchange) -> MessageLog | None:
    """A history row's messages as a log that is done filling (this process does not feed it)."""
    if not e.messages_protocol:
        return None
    log = MessageLog(e.messages_protocol, len(e.messages))
    log.messages = list(e.messages)
    log.dropped = e.messages_dropped
    log.note = e.messages_note or ("" if e.messages_closed else "still open when last stored")
    log.closed = True
    return log


def trimmed(record: RequestRecord, cap: int) -> RequestRecord:
    """``record`` with at most ``cap`` bytes of each body, for the log's ring (a copy: the
    capture writer may still hold the original with bodies up to the store's cap)."""
    c = record.capture
    if c is None or (len(c.request_body) <= cap and len(c.response_body) <= cap):
        return record
    capture = Capture(
        c.request_head,
        c.response_head,
        c.request_body[:cap],
        c.response_body[:cap],
        c.request_truncated or len(c.request_body) > cap,
        c.response_truncated or len(c.response_body) > cap,
        c.messages,  # shared: it may still be filling
    )
    return dataclasses.replace(record, capture=capture)


def as_replay(
    record: RequestRecord, original: RequestRecord, exchange_id: int | None, replay_of: int | None
) -> StoredRecord:
    """A replay's answer as a row linked to the row it replays."""
    values = {f.name: getattr(record, f.name) for f in dataclasses.fields(RequestRecord)}
    return StoredRecord(**values, exchange_id=exchange_id, replay_of=replay_of, original=original)
