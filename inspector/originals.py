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


@dataclass(frozen=True, slots=True)
class _Raw:
    """A request as captured (body still chunked, if it was): made an OriginalRequest when asked
    for, so the agent's process spends nothing per exchange on parsing heads nobody replays."""

    head: bytes
    body: bytes
    truncated: bool


class Originals:
    """id -> OriginalRequest, bounded; safe to use from the writer's thread and the API's."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[int, OriginalRequest | _Raw] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def put_raw(self, exchange_id: int, head: bytes, body: bytes, truncated: bool) -> None:
        """Keep a request as captured (its body's payload is taken out when it is asked for)."""
        self.put(exchange_id, _Raw(head, body, truncated))

    def put(self, exchange_id: int, original: OriginalRequest | _Raw) -> None:
        size = len(original.head) + len(original.body)
        if size > self.max_bytes:
            return  # one request larger than the whole map: the stored copy will have to do
        with self._lock:
            old = self._items.pop(exchange_id, None)
            if old is not None:
                self._bytes -= len(old.head) + len(old.body)
            self._items[exchange_id] = original
            self._bytes += size
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _, gone = self._items.popitem(last=False)
                self._bytes -= len(gone.head) + len(gone.body)

    def get(self, exchange_id: int) -> OriginalRequest | None:
        with self._lock:
            found = self._items.get(exchange_id)
        if isinstance(found, _Raw):
            return OriginalRequest(found.head, payload(found.head, found.body), found.truncated)
        return found

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
