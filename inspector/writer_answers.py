"""The capture writer's answers thread: the store process's answers, and its end.

Part of :class:`inspector.writer.CaptureWriter` (a base class of it, for the one job of reading
what the store process says): stored runs move the counts and the originals
(:class:`inspector.in_flight.InFlight`), flush tokens wake their waiters, a store that fails or
a process that dies stops the writer with an error that says why.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from inspector import errors
from inspector import pipe_codec as pc
from inspector import pipe_records as pr
from inspector.errors import StoreError
from inspector.in_flight import InFlight
from inspector.live_messages import LiveMessages
from inspector.settings import CaptureSettings
from relay.events import Capture

# Answers are small: os.read allocates the size asked for, with the GIL held, and a 1 MiB
# buffer cost 50 us a read.
ANSWER_READ = 64 * 1024
STDERR_KEPT = 4096  # bytes of the writer process's stderr kept, for the error that says why


class AnswersReader:
    """The reader thread's side of the writer; the attributes are the writer's."""

    settings: CaptureSettings
    on_error: Callable[[StoreError], None] | None
    error: StoreError | None
    _process: subprocess.Popen[bytes]
    _lock: threading.Lock
    _live_lock: threading.Lock
    _live: LiveMessages
    _in_flight: InFlight
    _submitted: int
    _submitted_bytes: int
    _watch_next: list[tuple[int, Capture]]
    _wake: threading.Event
    _ready: threading.Event
    _started: bool
    _open_error: StoreError | None
    _answers: dict[int, threading.Event]
    _answered_ok: set[int]
    _closing: bool
    _said: bytes
    _stderr: threading.Thread

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
        try:
            if kind == pc.STORED:
                runs = pr.decode_runs(payload)
                self._in_flight.answered_runs(runs, self._submitted, self._watch)
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
        except pc.FrameError:
            pass  # an answer that cannot be read: what it was about is counted when the store ends

    def _watch(self, first_id: int, first_seq: int, count: int) -> None:
        """Exchanges just stored: those with messages still coming are watched from now on."""
        waiting = self._watch_next
        if not waiting or waiting[0][0] >= first_seq + count:
            return
        n = len(waiting)
        pending = waiting[:n]
        del waiting[:n]  # the data path appends meanwhile: those stay
        later = []
        with self._live_lock:
            for seq, capture in pending:
                if first_seq <= seq < first_seq + count:
                    self._live.watch(first_id + seq - first_seq, capture)
                elif seq > self._in_flight.answered:
                    later.append((seq, capture))
        waiting[:0] = later
        self._wake.set()  # the sender may be waiting with no timeout: messages are due

    def _failed(self, exc: StoreError) -> None:
        with self._lock:
            first = self.error is None
            if first:
                self.error = exc
                self._in_flight.stop()  # submit() refuses from now on
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
        self._in_flight.ended(self._submitted, self._submitted_bytes)
        self._watch_next.clear()
        with self._lock:
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


def _store_error(data: dict[str, str]) -> StoreError:
    kind = getattr(errors, data.get("kind", ""), StoreError)
    if not (isinstance(kind, type) and issubclass(kind, StoreError)):
        kind = StoreError
    return kind(Path(data.get("path", "")), data.get("message", "unknown error"))
