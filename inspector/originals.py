"""The requests as they really were, by stored id: held in memory by the capturing process only.

The store keeps a redacted copy; a replay from the running process (its local API) sends the
original instead, secrets included. Bounded by count and bytes, oldest forgotten first; nothing
here ever reaches the disk.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from inspector.model import payload

MAX_ENTRIES = 2_000
MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class OriginalRequest:
    """A request head as the local app received it, and its body's payload (de-chunked)."""

    head: bytes
    body: bytes
    truncated: bool  # the agent kept only the first bytes of the body


# What the map holds: head, body, truncated, and whether the body is still as captured (maybe
# chunked: its payload is taken out when asked for, so the capturing process spends nothing per
# exchange on parsing heads nobody replays). Plain tuples: cheap to make thousands a second.
_Entry = tuple[bytes, bytes, bool, bool]


class Originals:
    """id -> OriginalRequest, bounded; safe to use from the writer's threads and the API's."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[int, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, exchange_id: int, original: OriginalRequest) -> None:
        self._put_all([(exchange_id, (original.head, original.body, original.truncated, False))])

    def put_captured(self, requests: list[tuple[int, bytes, bytes, bool]]) -> None:
        """Keep requests as captured: (id, head, body as it came, truncated), in one go."""
        self._put_all([(i, (head, body, cut, True)) for i, head, body, cut in requests])

    def _put_all(self, entries: list[tuple[int, _Entry]]) -> None:
        items = self._items
        with self._lock:
            for exchange_id, entry in entries:
                size = len(entry[0]) + len(entry[1])
                if size > self.max_bytes:
                    continue  # larger than the whole map: the stored copy will have to do
                old = items.pop(exchange_id, None)
                if old is not None:
                    self._bytes -= len(old[0]) + len(old[1])
                items[exchange_id] = entry
                self._bytes += size
            while len(items) > self.max_entries or self._bytes > self.max_bytes:
                _, gone = items.popitem(last=False)
                self._bytes -= len(gone[0]) + len(gone[1])

    def get(self, exchange_id: int) -> OriginalRequest | None:
        with self._lock:
            found = self._items.get(exchange_id)
        if found is None:
            return None
        head, body, truncated, captured = found
        return OriginalRequest(head, payload(head, body) if captured else body, truncated)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
