"""The capture writer: records taken from the data path with a cheap append, stored by a process.

``submit()`` appends one flat tuple of the exchange's fields to an outbox (over the bounds in
count or bytes it drops it and counts the drop), so a slow disk never slows a tunnel; no lock,
no Python per exchange anywhere else in this process. A sender thread packs each batch in a few
C calls (:mod:`inspector.pipe_records`) and writes it to a pipe. At the other end a spooler
process (:mod:`inspector.spooler`) reads it into memory at once, and a store process
(:mod:`inspector.capture_process`, at ``SCHED_IDLE``: only on CPU no tunnel wants) redacts,
caps, hashes, parses and writes SQLite, outside this process's GIL, and answers each batch with
runs of stored ids (read by :mod:`inspector.writer_answers`). Raw exchanges only cross the pipes
and live in those processes' memory: nothing unredacted reaches the disk.

The unredacted requests stay here (``originals``, by stored id) for replays from this process.
If the store fails while running (disk full, file damaged) or the writer process dies, the writer
stops writing, keeps the error in ``error`` for the front end to show, and counts what it could
not keep; the tunnels are not affected.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

if sys.platform != "win32":
    import fcntl

from inspector import pipe_codec as pc
from inspector import pipe_records as pr
from inspector.errors import StoreError
from inspector.in_flight import InFlight
from inspector.live_messages import MESSAGES_EVERY, LiveMessages
from inspector.message_frames import update_frame
from inspector.originals import Originals
from inspector.pipe_io import spawn_spooler, write_all
from inspector.redact import Redactor
from inspector.settings import CaptureSettings
from inspector.writer_answers import AnswersReader
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
START_TIMEOUT = 30.0  # seconds for the writer process to start, on top of the busy timeout
ROW_BYTES = 256  # what an exchange costs the bounds beyond its heads and bodies
_NAN = math.nan
# The row's flag shifts as globals of this module: one lookup each, not two.
_CUT_SHIFT, _ANSWER_CUT_SHIFT = pr.CUT_SHIFT, pr.ANSWER_CUT_SHIFT


def _no_capture(record: RequestRecord) -> Capture:
    """What an exchange without a capture is queued with: its request line alone (the store reads
    the method, path and version there), its request's cut flag NO_CAPTURE (the store keeps no
    capture for it). A method, path or version that makes no request line (a path with a space
    or not Latin-1: no observer makes one) leaves the head empty: that exchange is not stored,
    counted, and the rest of its batch is."""
    try:
        line = f"{record.method} {record.path} HTTP/{record.http_version}\r\n\r\n"
        head = line.encode("latin-1")
    except UnicodeEncodeError:
        head = b""
    if not pr.is_request_line(head):
        head = b""
    return Capture(head, request_truncated=pr.NO_CAPTURE)  # type: ignore[arg-type]


class CaptureWriter(AnswersReader):
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
        self.error: StoreError | None = None
        # The unredacted requests, by stored id, for replays from this process (its local API).
        self.originals = Originals()
        self._lock = threading.Lock()  # guards the flush tokens' bookkeeping
        # The data path only adds an exchange's fields (inspector.pipe_records.Row) to one flat
        # list: no lock (extending a list by a tuple is atomic), and the counts each have one
        # writer thread. The sender takes whole rows from the front (a slice and a del, atomic
        # too), packs the batch in a few C calls, and keeps its requests in _in_flight until
        # the store answers.
        self._outbox: list[Any] = []
        self._tokens: list[bytes] = []  # flush/index frames, sent after the rows before them
        self._submitted = 0  # rows appended (= the last seq); written by the data path only
        self._submitted_bytes = 0  # their sizes, in all (the data path only)
        self._refused = 0  # over the bounds, or after a store failure (the data path only)
        # Tunnel ids (the data path only): each (name, target) gets one, named to the store once
        # by a TUNNEL frame; the last pair submitted is compared by identity (the callers pass
        # the same strings every time), so most exchanges look nothing up.
        self._tunnel_ids: dict[tuple[str, str], int] = {}
        self._named: list[bytes] = []  # TUNNEL frames not yet sent: before the rows they name
        self._tunnel: str | None = None
        self._target: str | None = None
        self._tunnel_bits = 0  # the last pair's id << TUNNEL_SHIFT
        self._sent = 0  # rows packed and written (the sender only)
        self._sent_bytes = 0
        # Written by the answers thread only; its limits are the bounds (queue_size and
        # queue_bytes) as submit() compares them.
        self._in_flight = InFlight(self.originals, settings.queue_size, settings.queue_bytes)
        self._wake = threading.Event()  # set when the outbox gets a piece while the sender sleeps
        self._sleeping = False  # the sender waits on _wake (else it looks every SEND_DELAY)
        self._closing = False
        self.left_running = False  # close() left the writer process storing in the background
        self._token = 0
        # Exchanges with WebSocket/SSE messages still coming, by seq, until stored: their
        # messages are watched from the answers (the reader thread) and sent redacted by the
        # sender every MESSAGES_EVERY seconds.
        self._watch_next: list[tuple[int, Capture]] = []
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

    @property
    def written(self) -> int:
        """Exchanges stored."""
        return self._in_flight.stored

    @property
    def dropped(self) -> int:
        """Exchanges not kept: over the bounds, unreadable, or after a store failure."""
        return self._refused + self._in_flight.lost

    @property
    def batches(self) -> int:
        """The store's transactions: fewer than exchanges when traffic comes in bursts."""
        return self._in_flight.answers

    @property
    def queued(self) -> int:
        """Exchanges submitted and not yet answered by the store."""
        return self._submitted - self._in_flight.answered

    @property
    def queued_bytes(self) -> int:
        """Their size, as the bounds count it (a batch's until all of it is answered)."""
        return self._submitted_bytes - self._in_flight.released_bytes

    def submit(self, tunnel: str, record: RequestRecord, target: str = "") -> None:
        """Queue one exchange for the store; never blocks (over the bounds it is dropped, counted).

        ``target`` is the local app's URL, kept so that a replay knows where to send it. Called
        from one thread at a time (the agents' loop): the counts it keeps have no lock. The
        record is the agent's observer's: its bytes in and out count at least what its capture
        keeps of bodies it did not cut (the bounds count them).
        """
        capture = record.capture
        if capture is None:
            capture = _no_capture(record)
        if tunnel is not self._tunnel or target is not self._target:
            self._name_tunnel(tunnel, target)
        flags = record.status | self._tunnel_bits
        head, response = capture.request_head, capture.response_head
        body, answer = capture.request_body, capture.response_body
        if capture.request_truncated or capture.response_truncated:
            # A body past body_cap, or no capture at all (rare): what is kept, counted exactly.
            flags |= capture.request_truncated << _CUT_SHIFT
            flags |= capture.response_truncated << _ANSWER_CUT_SHIFT
            size = len(head) + len(response) + len(body) + len(answer)
        else:
            # The observer's bytes in and out: its heads and whole bodies (and any interim
            # response, not kept), so at least what the capture holds, without a len() each.
            size = record.bytes_in + record.bytes_out
        total = self._submitted_bytes + ROW_BYTES + size
        in_flight = self._in_flight
        # Bodies of up to body_cap each: a count alone would let a slow disk hold gigabytes.
        # (After a store failure both limits are -1: everything is refused.)
        if self._submitted >= in_flight.count_limit or total > in_flight.bytes_limit:
            self._refused += 1
            return
        self._submitted_bytes = total
        self._submitted += 1
        ttfb = record.ttfb_ms
        # Added first, then the sleeping flag read (the sender sets it, then looks here). The
        # tuple lives only as long as the call: its items are what the outbox keeps.
        self._outbox.extend(
            (
                record.time,
                record.duration_ms,
                _NAN if ttfb is None else ttfb,
                flags,
                record.bytes_in,
                record.bytes_out,
                record.client,
                head,
                response,
                body,
                answer,
                total,
            )
        )
        if capture.messages is not None:
            self._watch_next.append((self._submitted, capture))
        if self._sleeping:
            self._wake.set()

    def _name_tunnel(self, tunnel: str, target: str) -> None:
        """Make (tunnel, target) the current pair, with an id of its own (named once)."""
        key = (tunnel, target)
        tunnel_id = self._tunnel_ids.get(key)
        if tunnel_id is None:
            # Ids are never reused (a TUNNEL frame is sent before the rows taken with it, so a
            # reused id could rename rows still waiting): one per name and target ever used,
            # far fewer than MAX_TUNNELS.
            tunnel_id = len(self._tunnel_ids)
            self._tunnel_ids[key] = tunnel_id
            self._named.append(pr.tunnel_frame(tunnel_id, tunnel, target))
        self._tunnel, self._target = tunnel, target
        self._tunnel_bits = tunnel_id << pr.TUNNEL_SHIFT

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
            self._token += 1
            token = self._token
            self._answers[token] = done
        # After every row submitted so far: the sender takes tokens before rows.
        self._tokens.append(pc.token_frame(kind, token))
        self._wake.set()  # someone waits: no SEND_DELAY
        answered = done.wait(timeout)
        with self._lock:
            self._answers.pop(token, None)
            return answered and token in self._answered_ok

    def close(self, timeout: float = 10.0) -> bool:
        """Hand what is queued to the writer process, end it and wait up to ``timeout`` for it.

        True when it ended: everything stored, or counted in ``dropped``. False when it is still
        storing after ``timeout``: it is left to finish in the background (``queued`` says how
        many exchanges it still has) rather than killed, which would lose them. The store runs on
        idle CPU only, so on a saturated machine it can be seconds behind; a process that is
        quitting should not wait for that (see tui.captures.close_capture_writer)."""
        with self._lock:
            self._closing = True
        self._wake.set()
        started = time.monotonic()
        self._sender.join(timeout)  # to the spooler, at normal priority: quick
        try:
            self._process.wait(max(0.0, timeout - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            self.left_running = True
            return False
        self._reader.join(timeout)
        self._stderr.join(timeout)
        return True

    # The sender thread: the outbox to the pipe, one write per batch.

    def _send(self) -> None:
        pipe = self._process.stdin
        assert pipe is not None
        fd = pipe.fileno()
        outbox, tokens, named = self._outbox, self._tokens, self._named
        quiet = IDLE_ROUNDS  # rounds with nothing sent: asleep from the start
        while True:
            if quiet >= IDLE_ROUNDS:
                with self._live_lock:
                    live = bool(self._live)
                # Set first, then look: a row appended meanwhile is seen here, or its submit()
                # sees the flag and wakes this thread.
                self._sleeping = True
                if not (outbox or tokens or self._closing) and self._wake.wait(
                    MESSAGES_EVERY if live else None
                ):
                    quiet = 0
                self._sleeping = False
            if not self._closing and not self._wake.is_set():
                # More records come meanwhile: one write carries them all. (Records do not set
                # _wake now; a flush, close or messages due do, and end the wait.)
                self._wake.wait(SEND_DELAY)
            self._wake.clear()
            closing = self._closing
            # Tokens first, then rows: every row submitted before a token goes before it.
            n = len(tokens)
            asked = tokens[:n]
            del tokens[:n]
            n = len(outbox)
            rows = outbox[:n]  # whole rows: a row is added in one step
            del outbox[:n]
            # Tunnel names after the rows are taken (a row's name is appended before the row,
            # so it is here) and written before them.
            k = len(named)
            pieces = named[:k]
            del named[:k]
            quiet = quiet + 1 if not (rows or asked) else 0
            pieces += self._message_frames(bool(asked), closing)
            if rows:
                first = self._sent + 1
                count = n // pr.ROW
                frame, kept = pr.pack_batch(first, rows)
                pieces += frame
                self._sent += count
                total = rows[-1]  # the last row's running total
                # Before the answer can come; the responses go with the rows.
                self._in_flight.sent(first, count, kept, total - self._sent_bytes)
                self._sent_bytes = total
            pieces += asked
            if pieces and not write_all(fd, pieces):
                break  # the writer process is gone: the reader says so
            if closing:
                break
        with contextlib.suppress(OSError):
            pipe.close()  # EOF: the writer process stores what it has and exits

    def _message_frames(self, asked: bool, closing: bool) -> list[bytes]:
        """The watched connections' new messages, when due: every MESSAGES_EVERY, and before
        a flush's token (``asked``) or the end, so those answers include them."""
        now = time.monotonic()
        due = closing or asked or now >= self._messages_at + MESSAGES_EVERY
        if not due:
            return []
        with self._live_lock:
            if not self._live:
                return []
            self._messages_at = now
            updates = self._live.updates()
        return [update_frame(update) for update in updates]

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
