"""The capture writer: records taken from the data path with a cheap append, stored by a process.

``submit()`` appends the record to an outbox (over the bounds in count or bytes it drops the
record and counts the drop), so a slow disk never slows a tunnel. A sender thread packs each
record (one ``struct.pack``; heads and bodies are not copied) and writes the batch to a pipe with
writev. At the other end a spooler process (:mod:`inspector.spooler`) reads it into memory at
once, and a store process (:mod:`inspector.capture_process`, at ``SCHED_IDLE``: only on CPU no
tunnel wants) redacts, caps, hashes, parses and writes SQLite, outside this process's GIL, and
answers each batch with the stored ids. Raw exchanges only cross the pipes and live in those
processes' memory: nothing unredacted reaches the disk.

The unredacted requests stay here (``originals``, by stored id) for replays from this process.
If the store fails while running (disk full, file damaged) or the writer process dies, the writer
stops writing, keeps the error in ``error`` for the front end to show, and counts what it could
not keep; the tunnels are not affected.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

if sys.platform != "win32":
    import fcntl

from inspector import errors
from inspector import pipe_codec as pc
from inspector.errors import StoreError
from inspector.live_messages import MESSAGES_EVERY, LiveMessages
from inspector.message_frames import update_frame
from inspector.originals import Originals
from inspector.pipe_io import spawn_spooler, write_all
from inspector.redact import Redactor
from inspector.settings import CaptureSettings
from relay.events import Capture, RequestRecord

# Seconds between the sender's writes while records keep coming. Each write wakes this
# process's sender thread, then the spooler: ~100 us of CPU a round on a busy core whatever it
# carries, so 20 rounds a second, not 100 (the store sees exchanges 50 ms later; a flush or the
# first record after a quiet spell goes at once).
SEND_DELAY = 0.05
# Rounds of SEND_DELAY with nothing to send before the sender sleeps until woken: while records
# keep coming it looks every SEND_DELAY instead, so submit() wakes no thread (an Event.set per
# batch was a third of submit()'s cost under load).
IDLE_ROUNDS = 4
PIPE_SIZE = 1024 * 1024  # the pipe's buffer, where the system lets us: fewer wake-ups per batch
# Answers are small (16 bytes an exchange): os.read allocates the size asked for, with the GIL
# held, and a 1 MiB buffer cost 50 us a read.
ANSWER_READ = 64 * 1024
STDERR_KEPT = 4096  # bytes of the writer process's stderr kept, for the error that says why
START_TIMEOUT = 30.0  # seconds for the writer process to start, on top of the busy timeout
# What waits for the store's answer, per exchange: see CaptureWriter._in_flight.
_InFlight = tuple[int, bytes, bytes, bool, Capture | None]
_NOTHING: _InFlight = (256, b"", b"", False, None)  # a record without a capture
_GONE: _InFlight = (0, b"", b"", False, None)  # answered already (not expected)


class CaptureWriter:
    """Feeds a writer process that stores exchanges in a :class:`CaptureStore`.

    Open with ``open_writer``. Raises :class:`StoreError` (naming the file) if the store cannot be
    opened."""

    def __init__(
        self,
        settings: CaptureSettings,
        on_error: Callable[[StoreError], None] | None = None,
    ) -> None:
        self.settings = settings
        self.on_error = on_error
        self.dropped = 0  # records refused: bounds reached, unreadable, or after a store failure
        self.written = 0
        self.batches = 0  # transactions: fewer than exchanges when traffic comes in bursts
        self.error: StoreError | None = None
        # The unredacted requests, by stored id, for replays from this process (its local API).
        self.originals = Originals()
        self._lock = threading.Lock()  # guards the outbox, the counts and what is in flight
        # Records (seq, tunnel, target, record) and ready frames, in order: records are packed
        # by the sender thread, so the data path only appends.
        self._outbox: list[tuple[int, str, str, RequestRecord] | bytes] = []
        self._wake = threading.Event()  # set when the outbox gets a piece while the sender sleeps
        self._sleeping = False  # the sender waits on _wake (else it looks every SEND_DELAY)
        self._closing = False
        self._seq = 0
        self._queued = 0  # records submitted and not yet answered by the writer process
        self._queued_bytes = 0
        # seq -> (size, request head, request body, truncated, capture if it has messages).
        # Plain tuples of bytes: the collector stops tracking them at its first pass, so the up
        # to queue_size exchanges waiting here cost its collections nothing (a Capture held
        # here was walked by every collection while it waited, and promoted to the oldest
        # generation, which made full collections come more often: see benchmarks/README.md).
        self._in_flight: dict[int, _InFlight] = {}
        # WebSocket/SSE messages still arriving on stored exchanges: watched from the answers
        # (the reader thread), sent redacted by the sender every MESSAGES_EVERY seconds.
        redactor = Redactor(settings.all_redact_headers, settings.all_redact_keys)
        self._live = LiveMessages(redactor)
        self._live_lock = threading.Lock()
        self._messages_at = 0.0  # monotonic time messages were last sent
        self._answers: dict[int, threading.Event] = {}  # flush/index token -> done
        self._answered_ok: set[int] = set()
        self._ready = threading.Event()
        self._started = False  # the writer process said READY
        self._open_error: StoreError | None = None
        self._process = self._spawn()
        if sys.platform == "linux" and self._process.stdin is not None:
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(self._process.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self._said = b""  # the end of what the writer process wrote on stderr
        self._reader = threading.Thread(target=self._read, name="molehill-capture-answers")
        self._reader.daemon = True
        self._reader.start()
        self._stderr = threading.Thread(target=self._read_stderr, name="molehill-capture-stderr")
        self._stderr.daemon = True
        self._stderr.start()
        if not self._ready.wait(settings.busy_timeout + START_TIMEOUT) or self._open_error:
            self._abandon()
            raise self._open_error or StoreError(
                settings.file, "the capture writer process did not start in time"
            )
        self._sender = threading.Thread(target=self._send, name="molehill-capture", daemon=True)
        self._sender.start()

    @property
    def path(self) -> str:
        return str(self.settings.file)

    @property
    def pid(self) -> int:
        """The writer process's id."""
        return self._process.pid

    def _spawn(self) -> subprocess.Popen[bytes]:
        return spawn_spooler(self.settings)

    def submit(self, tunnel: str, record: RequestRecord, target: str = "") -> None:
        """Queue one exchange for the store; never blocks (over the bounds it is dropped, counted).

        ``target`` is the local app's URL, kept so that a replay knows where to send it.
        """
        capture = record.capture
        size = (
            256
            if capture is None
            else 256
            + len(capture.request_head)
            + len(capture.response_head)
            + len(capture.request_body)
            + len(capture.response_body)
        )
        settings = self.settings
        with self._lock:
            # Bodies of up to body_cap each: a count alone would let a slow disk hold gigabytes.
            if (
                self.error is not None
                or self._queued >= settings.queue_size
                or self._queued_bytes + size > settings.queue_bytes
            ):
                self.dropped += 1
                return
            self._seq += 1
            seq = self._seq
            self._queued += 1
            self._queued_bytes += size
            self._in_flight[seq] = (
                _NOTHING
                if capture is None
                else (
                    size,
                    capture.request_head,
                    capture.request_body,
                    capture.request_truncated,
                    None if capture.messages is None else capture,
                )
            )
            if self._sleeping:
                self._sleeping = False
                self._wake.set()
            self._outbox.append((seq, tunnel, target, record))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is stored; False if that took too long.

        Messages of an exchange can only be sent once it is stored (they need its id): a
        second round then carries what the first one's answers set watching."""
        if not self._ask(pc.FLUSH, timeout):
            return False
        with self._live_lock:
            live = bool(self._live)
        return self._ask(pc.FLUSH, timeout) if live else True

    def wait_indexed(self, timeout: float = 30.0) -> bool:
        """Wait until the body index has caught up with what is stored (tests, benchmarks)."""
        return self.flush(timeout) and self._ask(pc.INDEXED, timeout)

    def _ask(self, kind: int, timeout: float) -> bool:
        done = threading.Event()
        with self._lock:
            if self._closing or not self._reader.is_alive():
                return False
            self._seq += 1
            token = self._seq
            self._answers[token] = done
            self._sleeping = False
            self._wake.set()  # someone waits: no SEND_DELAY
            self._outbox.append(pc.token_frame(kind, token))
        answered = done.wait(timeout)
        with self._lock:
            self._answers.pop(token, None)
            return answered and token in self._answered_ok

    def close(self, timeout: float = 10.0) -> None:
        """Store what is queued, end the writer process and wait for it."""
        with self._lock:
            self._closing = True
            self._sleeping = False
            self._wake.set()
        self._sender.join(timeout)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()  # a writer stuck on a lock: what it still holds is lost
            self._process.wait()
        self._reader.join(timeout)
        self._stderr.join(timeout)

    # The sender thread: the outbox to the pipe, one write per batch.

    def _send(self) -> None:
        pipe = self._process.stdin
        assert pipe is not None
        fd = pipe.fileno()
        quiet = IDLE_ROUNDS  # rounds with nothing sent: asleep from the start
        while True:
            if quiet >= IDLE_ROUNDS:
                with self._live_lock:
                    live = bool(self._live)
                with self._lock:
                    self._sleeping = not self._outbox and not self._closing
                    sleeping = self._sleeping
                # Open connections' messages go every MESSAGES_EVERY, records or not.
                if sleeping and self._wake.wait(MESSAGES_EVERY if live else None):
                    quiet = 0
            if not self._closing and not self._wake.is_set():
                # More records come meanwhile: one write carries them all. (Records do not set
                # _wake now; a flush, close or messages due do, and end the wait.)
                self._wake.wait(SEND_DELAY)
            with self._lock:
                batch, self._outbox = self._outbox, []
                self._wake.clear()
                self._sleeping = False
                closing = self._closing
            quiet = quiet + 1 if not batch else 0
            pieces = self._message_frames(batch, closing)
            for item in batch:
                if type(item) is bytes:
                    pieces.append(item)
                else:
                    pieces += pc.record_pieces(*item)
            if pieces and not write_all(fd, pieces):
                break  # the writer process is gone: the reader says so
            if closing:
                break
        with contextlib.suppress(OSError):
            pipe.close()  # EOF: the writer process stores what it has and exits

    def _message_frames(
        self, batch: list[tuple[int, str, str, RequestRecord] | bytes], closing: bool
    ) -> list[bytes]:
        """The watched connections' new messages, when due: every MESSAGES_EVERY, and before
        a flush's token (bytes in ``batch``) or the end, so those answers include them."""
        now = time.monotonic()
        due = closing or now >= self._messages_at + MESSAGES_EVERY
        if not due and not any(type(item) is bytes for item in batch):
            return []
        with self._live_lock:
            if not self._live:
                return []
            self._messages_at = now
            updates = self._live.updates()
        return [update_frame(update) for update in updates]

    # The reader thread: the writer process's answers.

    def _read(self) -> None:
        pipe = self._process.stdout
        assert pipe is not None
        decoder = pc.FrameDecoder(max_frame=64 * 1024 * 1024)
        fd = pipe.fileno()
        while True:
            try:
                data = os.read(fd, ANSWER_READ)
            except OSError:
                data = b""
            if not data:
                break
            for item in decoder.feed(data):
                self._answer(item)
        pipe.close()
        self._ended()

    def _read_stderr(self) -> None:
        pipe = self._process.stderr
        assert pipe is not None
        for line in pipe:
            self._said = (self._said + line)[-STDERR_KEPT:]
        pipe.close()

    def _last_words(self) -> str:
        """The last line the writer process wrote on stderr (its error), or ""."""
        self._stderr.join(2)
        lines = self._said.decode(errors="replace").strip().splitlines()
        return f": {lines[-1]}" if lines else ""

    def _answer(self, item: pc.Item) -> None:
        kind, payload = item.kind, item.payload
        if kind == pc.STORED:
            self._stored(pc.decode_pairs(payload))
        elif kind == pc.DROPPED:
            self._forget(pc.decode_seqs(payload))
        elif kind in (pc.FLUSHED, pc.INDEXED_DONE):
            token = pc.decode_token(payload)
            with self._lock:
                self._answered_ok.add(token)
                done = self._answers.get(token)
            if done is not None:
                done.set()
        elif kind == pc.READY:
            self._started = True
            self._ready.set()
        elif kind == pc.OPEN_FAILED:
            self._open_error = _store_error(pc.decode_json(payload))
            self._ready.set()
        elif kind == pc.FAILED:
            self._failed(_store_error(pc.decode_json(payload)))

    def _stored(self, pairs: list[tuple[int, int]]) -> None:
        in_flight = self._in_flight
        requests = []
        watch: list[tuple[int, Capture]] = []
        held = 0
        # Outside the lock (a dict's pop is atomic, and only this thread pops): submit() never
        # waits while a batch of answers is gone through, only for the counts below.
        for seq, exchange_id in pairs:
            size, head, body, truncated, live = in_flight.pop(seq, _GONE)
            held += size
            if live is not None:
                watch.append((exchange_id, live))
            if head:
                requests.append((exchange_id, head, body, truncated))
        with self._lock:
            self._queued -= len(pairs)
            self._queued_bytes -= held
            self.written += len(pairs)
            self.batches += 1
        self.originals.put_captured(requests)
        if watch:
            with self._live_lock:
                for exchange_id, capture in watch:
                    self._live.watch(exchange_id, capture)
            self._wake.set()  # the sender may be waiting with no timeout: messages are due

    def _forget(self, seqs: list[int]) -> None:
        held = sum(self._in_flight.pop(seq, _GONE)[0] for seq in seqs)
        with self._lock:
            self._queued -= len(seqs)
            self._queued_bytes -= held
            self.dropped += len(seqs)

    def _failed(self, exc: StoreError) -> None:
        with self._lock:
            first = self.error is None
            if first:
                self.error = exc
        if first and self.on_error is not None:
            self.on_error(exc)

    def _ended(self) -> None:
        """The writer process's answers ended: at close, or because it died."""
        code = self._process.wait()
        if not self._started and self._open_error is None:
            self._open_error = StoreError(
                self.settings.file,
                f"the capture writer process exited (code {code}) before opening the store"
                + self._last_words(),
            )
        self._ready.set()
        with self._lock:
            lost = len(self._in_flight)
            self._in_flight.clear()
            self._queued = self._queued_bytes = 0
            self.dropped += lost
            waiting = list(self._answers.values())
            closing = self._closing
        for done in waiting:
            done.set()  # not in _answered_ok: flush() says False
        if not closing and self._started:
            self._failed(
                StoreError(
                    self.settings.file,
                    f"the capture writer process ended unexpectedly (exit code {code}"
                    f"{self._last_words()}); request history is off until molehill restarts",
                )
            )

    def _abandon(self) -> None:
        with contextlib.suppress(OSError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join(5)


def _store_error(data: dict[str, str]) -> StoreError:
    kind = getattr(errors, data.get("kind", ""), StoreError)
    if not (isinstance(kind, type) and issubclass(kind, StoreError)):
        kind = StoreError
    return kind(Path(data.get("path", "")), data.get("message", "unknown error"))
