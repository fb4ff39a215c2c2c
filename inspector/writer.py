"""The capture writer: takes records from the data path without blocking, stores them on a thread.

``submit()`` only puts the record on a bounded queue (a full queue drops it and counts the drop),
so a slow disk never slows a tunnel. The thread redacts, caps and hashes the bodies, and writes
what arrives within ``BATCH_WINDOW`` in one transaction. After a second with nothing to store it
adds stored bodies to the search index, a few at a time (searches scan what is not indexed yet:
same answers, slower), so the index never competes with a tunnel under load.
If the store fails while running (disk full, file damaged), the writer stops writing, keeps the
error in ``error`` for the front end to show, and counts what it could not keep; the tunnels are
not affected.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import cast

from inspector.errors import StoreError
from inspector.live_messages import MESSAGES_EVERY, LiveMessages
from inspector.model import StoredExchange, payload, prepare
from inspector.originals import OriginalRequest, Originals
from inspector.redact import Redactor
from inspector.settings import CaptureSettings
from inspector.store import CaptureStore
from relay.events import RequestRecord

_STOP = object()
INDEX_STEP = 100  # exchanges indexed per transaction while the queue is empty
BATCH_WINDOW = 0.1  # seconds a batch stays open for more exchanges
INDEX_AFTER_IDLE = 1.0  # seconds without writes before the body index catches up


class CaptureWriter:
    """Writes exchanges to a :class:`CaptureStore` on its own thread. Open with ``open_writer``."""

    def __init__(
        self,
        store: CaptureStore,
        settings: CaptureSettings,
        on_error: Callable[[StoreError], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.on_error = on_error
        self.redactor = Redactor(settings.all_redact_headers, settings.all_redact_keys)
        self.dropped = 0  # records refused because the queue was full, or after a store failure
        self.written = 0
        self.batches = 0  # transactions: fewer than exchanges when traffic comes in bursts
        self.error: StoreError | None = None
        # The unredacted requests, by stored id, for replays from this process (its local API).
        self.originals = Originals()
        self.live = LiveMessages(self.redactor)  # WebSocket/SSE messages still arriving
        self._messages_at = 0.0  # monotonic time messages were last stored
        self._queue: queue.Queue[object] = queue.Queue(settings.queue_size)
        self._drop_lock = threading.Lock()  # guards dropped and _queued_bytes
        self._queued_bytes = 0
        # Clear while stored exchanges may await the body index (an earlier run may have left
        # some, so it starts clear).
        self._indexed = threading.Event()
        if not store.fts:
            self._indexed.set()
        self._thread = threading.Thread(target=self._run, name="molehill-capture", daemon=True)
        self._thread.start()

    @property
    def path(self) -> str:
        return str(self.store.path)

    def submit(self, tunnel: str, record: RequestRecord, target: str = "") -> None:
        """Queue one exchange for the store; never blocks (a full queue drops it and counts it).

        ``target`` is the local app's URL, kept so that a replay knows where to send it.
        """
        if self.error is not None:
            self._drop(1)
            return
        size = _held_bytes(record)
        with self._drop_lock:
            # Bodies of up to body_cap each: a count alone would let a slow disk hold gigabytes.
            if self._queued_bytes + size > self.settings.queue_bytes:
                self.dropped += 1
                return
            self._queued_bytes += size
        try:
            self._queue.put_nowait((tunnel, record, target, size))
        except queue.Full:
            with self._drop_lock:
                self._queued_bytes -= size
                self.dropped += 1

    def _drop(self, n: int) -> None:
        with self._drop_lock:
            self.dropped += n

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is stored; False if that took too long."""
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Store what is queued, stop the thread and close the file."""
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(_STOP, timeout=timeout)
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.store.close()

    def wait_indexed(self, timeout: float = 30.0) -> bool:
        """Wait until the body index has caught up with what is stored (tests, benchmarks)."""
        return self.flush(timeout) and self._indexed.wait(timeout)

    def _run(self) -> None:
        stopping = False
        last_write = 0.0
        while not stopping:
            # The body index costs more than storing: it waits for a quiet second, so it never
            # takes CPU from a tunnel under load (searches scan what is not indexed yet).
            timeout = None
            if not self._indexed.is_set():
                timeout = max(0.0, last_write + INDEX_AFTER_IDLE - time.monotonic())
            if self.live:  # open connections' messages are stored every MESSAGES_EVERY
                timeout = MESSAGES_EVERY if timeout is None else min(timeout, MESSAGES_EVERY)
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                self._store_messages()
                idle = time.monotonic() >= last_write + INDEX_AFTER_IDLE
                if idle and not self._indexed.is_set():
                    self._index_step()
                continue
            batch: list[tuple[StoredExchange, RequestRecord]] = []
            waiting: list[threading.Event] = []
            # A batch stays open a moment for more: one transaction for many exchanges.
            closes = time.monotonic() + BATCH_WINDOW
            while True:
                if item is _STOP:
                    stopping = True
                elif isinstance(item, threading.Event):
                    waiting.append(item)
                else:
                    tunnel, record, target, size = cast(tuple[str, RequestRecord, str, int], item)
                    with self._drop_lock:
                        self._queued_bytes -= size
                    try:
                        batch.append((self._prepare(tunnel, record, target), record))
                    except Exception:  # a record we cannot read must not stop the writer
                        self._drop(1)
                if stopping or waiting or len(batch) >= self.settings.batch_size:
                    break  # (someone waits in flush(): write now)
                remaining = closes - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else None
                except queue.Empty:
                    item = None
                if item is None:
                    break
            self._write(batch)
            last_write = time.monotonic()
            if waiting or stopping or last_write >= self._messages_at + MESSAGES_EVERY:
                self._store_messages()
            for event in waiting:
                event.set()

    def _store_messages(self) -> None:
        self._messages_at = time.monotonic()
        updates = self.live.updates()
        if not updates or self.error is not None:
            return
        try:
            self.store.add_messages(updates)
        except StoreError as exc:
            self._failed(exc)

    def _index_step(self) -> None:
        if self.error is not None:
            self._indexed.set()
            return
        try:
            if self.store.index_some(INDEX_STEP) == 0:
                self._indexed.set()
        except StoreError as exc:
            self._failed(exc)
            self._indexed.set()

    def _failed(self, exc: StoreError) -> None:
        self.error = exc
        if self.on_error is not None:
            self.on_error(exc)

    def _prepare(self, tunnel: str, record: RequestRecord, target: str) -> StoredExchange:
        return prepare(tunnel, record, self.redactor, self.settings.body_cap, target=target)

    def _write(self, batch: list[tuple[StoredExchange, RequestRecord]]) -> None:
        if not batch:
            return
        if self.error is not None:
            self._drop(len(batch))
            return
        try:
            ids = self.store.add([stored for stored, _ in batch])
            for exchange_id, (_, record) in zip(ids, batch, strict=True):
                self._remember(exchange_id, record)
                self.live.watch(exchange_id, record)
            self.written += len(batch)
            self.batches += 1
            self._indexed.clear()
        except StoreError as exc:
            self._drop(len(batch))
            self._failed(exc)

    def _remember(self, exchange_id: int, record: RequestRecord) -> None:
        capture = record.capture
        if capture is None or not capture.request_head:
            return
        body = payload(capture.request_head, capture.request_body)
        self.originals.put(
            exchange_id, OriginalRequest(capture.request_head, body, capture.request_truncated)
        )


def _held_bytes(record: RequestRecord) -> int:
    """What a queued record holds in memory, about: its captured heads and bodies."""
    capture = record.capture
    if capture is None:
        return 256
    return 256 + (
        len(capture.request_head)
        + len(capture.response_head)
        + len(capture.request_body)
        + len(capture.response_body)
    )
