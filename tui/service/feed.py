"""The event feed, sans-I/O: one drained batch as messages under the size limit.

Records travel with at most ``body_share`` body bytes each (what the dashboard's log keeps;
the whole exchange is in the capture store). A batch too big for one message is split by its
records; statuses and events ride in the first part.
"""

from __future__ import annotations

from relay.events import RequestRecord
from relay.host import HostUpdate
from tui.log_records import trimmed
from tui.service.forms import pack_update
from tui.service.protocol import MAX_MESSAGE, encode

RECORDS_PER_PART = 500  # a first guess at a part's size; halved while a part is too big


def feed_messages(
    update: HostUpdate, body_share: int, max_message: int = MAX_MESSAGE
) -> list[tuple[bytes, int]]:
    """The encoded messages that carry ``update``, each with the number of records in it;
    none when there is nothing in it."""
    if not update.records and not update.events and not update.statuses:
        return []
    flat = [
        (key, trimmed(record, body_share))
        for key, records in update.records.items()
        for record in records
    ]
    first = HostUpdate({}, update.events, update.statuses)
    parts: list[tuple[bytes, int]] = []
    start = 0
    size = RECORDS_PER_PART
    while True:
        chunk = flat[start : start + size]
        body = _with_records(first if not parts else HostUpdate(), chunk)
        try:
            message = encode({"feed": pack_update(body)}, max_message)
        except ValueError:
            if size == 1:
                raise  # one record over the limit: body_share is far too large for it
            size = max(1, size // 2)
            continue
        parts.append((message, len(chunk)))
        start += len(chunk)
        if start >= len(flat):
            return parts


def _with_records(update: HostUpdate, chunk: list[tuple[str, RequestRecord]]) -> HostUpdate:
    records: dict[str, list[RequestRecord]] = {}
    for key, record in chunk:
        records.setdefault(key, []).append(record)
    return HostUpdate(records, update.events, update.statuses)
