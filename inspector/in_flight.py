"""What the capture writer has sent and the store has not answered yet, by batch, and the counts
its answers move.

The sender thread adds each batch it writes (:meth:`InFlight.sent`); the answers thread gives the
store's runs (:meth:`InFlight.answered`): seqs stored with consecutive ids, or not stored (id -1).
Answers come in seq order; seqs an answer skips were in a frame the store could not read, and
count as not kept. A batch is let go, and handed to the originals, once its last seq is answered.
Every count here is written by the answers thread only, so the data path reads them without a
lock (its own counts, what it submitted, are written by it only). The two limits are the bounds
as the data path compares them: the last seq it may submit, and its running total of bytes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from inspector.originals import Originals
from inspector.pipe_records import Requests

NOT_STORED = -1  # a run's first id when its seqs were not stored


class InFlight:
    def __init__(self, originals: Originals, max_count: int = 1 << 62, max_bytes: int = 1 << 62):
        self.originals = originals
        self.max_count = max_count  # exchanges submitted and not answered, at most
        self.max_bytes = max_bytes  # their bytes, as the writer counts them, at most
        # What the data path compares its counts with (seq and running total of bytes it may
        # not reach), kept here as the answers move them: two compares a submit, no arithmetic.
        self.count_limit = max_count
        self.bytes_limit = max_bytes
        self.stopped = False  # the store failed: nothing more is taken
        self.answered = 0  # every seq up to this one is answered (stored or not)
        self.released_bytes = 0  # bytes of the batches let go
        self.stored = 0
        self.lost = 0  # answered as not stored, or skipped by the store
        self.answers = 0  # answers with stored exchanges (the store's transactions)
        # (first seq, count, requests, bytes): added by the sender, let go by the answers thread.
        self._batches: deque[tuple[int, int, Requests, int]] = deque()

    def sent(self, first_seq: int, count: int, requests: Requests, nbytes: int) -> None:
        """A batch written: ``count`` exchanges from ``first_seq``, their requests kept for
        replays once stored, ``nbytes`` what the writer's bound counted for them."""
        self._batches.append((first_seq, count, requests, nbytes))

    def answered_runs(
        self,
        runs: list[tuple[int, int, int]],
        submitted: int,
        on_stored: Callable[[int, int, int], None],
    ) -> None:
        """Take one answer's runs; ``submitted``: the highest seq there is (later ones are not
        believed); ``on_stored(first_id, first_seq, count)`` for each stored run."""
        stored = False
        for seq, first_id, count in runs:
            last = min(seq + count - 1, submitted)
            if last <= self.answered:
                continue  # answered already: not counted twice
            if seq <= self.answered:  # partly answered already
                if first_id != NOT_STORED:
                    first_id += self.answered + 1 - seq
                seq = self.answered + 1
            if seq > self.answered + 1:
                self.lost += seq - self.answered - 1  # skipped: unreadable to the store
            count = last - seq + 1
            self.answered = last
            if first_id == NOT_STORED:
                self.lost += count
            else:
                self.stored += count
                stored = True
                self.originals.put_run(first_id, seq, count)
                on_stored(first_id, seq, count)
        if stored:
            self.answers += 1
        batches = self._batches
        while batches and batches[0][0] + batches[0][1] - 1 <= self.answered:
            first, _, kept, nbytes = batches.popleft()
            self.released_bytes += nbytes
            self.originals.put_batch(first, kept)
        self._limits()

    def stop(self) -> None:
        """The store failed: every later submit is refused (and counted)."""
        self.stopped = True
        self._limits()

    def _limits(self) -> None:
        if self.stopped:
            self.count_limit = self.bytes_limit = -1
        else:
            self.count_limit = self.answered + self.max_count
            self.bytes_limit = self.released_bytes + self.max_bytes

    def ended(self, submitted: int, submitted_bytes: int) -> int:
        """The store is gone: whatever was not answered is lost; how many that is."""
        lost = max(0, submitted - self.answered)
        self.lost += lost
        self.answered = max(self.answered, submitted)
        self.released_bytes = max(self.released_bytes, submitted_bytes)
        self._batches.clear()
        self._limits()
        return lost
