"""The requests as they really were, by stored id: held in memory by the capturing process only.

The store keeps a redacted copy; a replay from the running process (its local API) sends the
original instead, secrets included. Bounded by count and bytes, oldest forgotten first; nothing
here ever reaches the disk.

Captured exchanges come in whole batches, as the writer sent them (its requests' heads, bodies
and flags as columns, by seq), with the store's answers as runs of (first id, first seq, count):
keeping them costs no Python per exchange, and the id -> seq translation is done when a replay
asks (rarely). Replays' own requests are put one at a time, by id.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass

from inspector.model import payload
from inspector.pipe_records import CUT_SHIFT, NO_CAPTURE, Requests

MAX_ENTRIES = 2_000
MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class OriginalRequest:
    """A request head as the local app received it, and its body's payload (de-chunked)."""

    head: bytes
    body: bytes
    truncated: bool  # the agent kept only the first bytes of the body


# One put by id: head, body, truncated, and whether the body is still as captured (maybe
# chunked: its payload is taken out when asked for).
_Entry = tuple[bytes, bytes, bool, bool]


class _Batch:
    __slots__ = ("bodies", "first", "flags", "heads", "nbytes")

    def __init__(
        self,
        first: int,
        heads: Sequence[bytes],
        bodies: Sequence[bytes],
        flags: Sequence[int],
        nbytes: int,
    ) -> None:
        self.first = first  # the seq of heads[0]
        self.heads = heads
        self.bodies = bodies
        # The writer's flags: bits 16-17 say whether the body was cut (2: no capture at all).
        self.flags = flags
        self.nbytes = nbytes


class Originals:
    """id -> OriginalRequest, bounded; safe to use from the writer's threads and the API's."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[int, _Entry] = OrderedDict()  # put by id
        self._batches: deque[_Batch] = deque()
        self._runs: deque[tuple[int, int, int]] = deque()  # (first id, first seq, count)
        self._count = 0
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._count

    def put(self, exchange_id: int, original: OriginalRequest) -> None:
        size = len(original.head) + len(original.body)
        if size > self.max_bytes:
            return  # larger than the whole map: the stored copy will have to do
        with self._lock:
            old = self._items.pop(exchange_id, None)
            if old is not None:
                self._count -= 1
                self._bytes -= len(old[0]) + len(old[1])
            self._items[exchange_id] = (original.head, original.body, original.truncated, False)
            self._count += 1
            self._bytes += size
            self._evict()

    def put_batch(self, first_seq: int, requests: Requests) -> None:
        """Keep a batch's requests (seqs first_seq...), as the writer's sender took them
        (pipe_records.pack_batch: heads, bodies, flags, and their bytes in all)."""
        heads, bodies, flags, nbytes = requests
        with self._lock:
            self._batches.append(_Batch(first_seq, heads, bodies, flags, nbytes))
            self._count += len(heads)
            self._bytes += nbytes
            self._evict()

    def put_run(self, first_id: int, first_seq: int, count: int) -> None:
        """The store gave ids first_id... to seqs first_seq... (count of them)."""
        with self._lock:
            self._runs.append((first_id, first_seq, count))
            if len(self._runs) > 4 * self.max_entries:
                self._runs.popleft()  # a run per exchange at worst: at most this many kept

    def _evict(self) -> None:
        """Oldest batches first, until within both bounds; by count only whole batches go, so
        the count may stay over by less than the oldest batch (its bytes are within bounds)."""
        batches = self._batches
        while self._count > self.max_entries or self._bytes > self.max_bytes:
            if batches and (
                self._bytes > self.max_bytes
                or self._count - len(batches[0].heads) >= self.max_entries
            ):
                oldest = batches.popleft()
                self._count -= len(oldest.heads)
                self._bytes -= oldest.nbytes
            elif self._items:
                _, gone = self._items.popitem(last=False)
                self._count -= 1
                self._bytes -= len(gone[0]) + len(gone[1])
            else:
                break
        # Runs of seqs no batch holds any more are of no use.
        first = self._batches[0].first if self._batches else None
        runs = self._runs
        while runs and (first is None or runs[0][1] + runs[0][2] <= first):
            runs.popleft()

    def get(self, exchange_id: int) -> OriginalRequest | None:
        with self._lock:
            found = self._items.get(exchange_id)
            if found is None:
                found = self._captured(exchange_id)
        if found is None:
            return None
        head, body, truncated, captured = found
        return OriginalRequest(head, payload(head, body) if captured else body, truncated)

    def _captured(self, exchange_id: int) -> _Entry | None:
        for first_id, first_seq, count in reversed(self._runs):
            if first_id <= exchange_id < first_id + count:
                seq = first_seq + exchange_id - first_id
                break
        else:
            return None
        batches = self._batches
        at = bisect_right(batches, seq, key=lambda b: b.first) - 1
        if at < 0 or seq - batches[at].first >= len(batches[at].heads):
            return None
        batch = batches[at]
        i = seq - batch.first
        head, body, cut = batch.heads[i], batch.bodies[i], batch.flags[i] >> CUT_SHIFT & 3
        if not head or cut == NO_CAPTURE:
            return None  # an exchange without a capture
        return (head, body, bool(cut), True)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._batches.clear()
            self._runs.clear()
            self._count = 0
            self._bytes = 0
