"""The capture store process: reads raw exchanges from a pipe, redacts them and writes SQLite.

Started by :mod:`inspector.spooler` as ``python -m inspector.capture_process SETTINGS_JSON``
with the spooler's pipe on its stdin and the agent's answer pipe on its stdout (frames of
:mod:`inspector.pipe_codec`). It runs at ``SCHED_IDLE``: only on CPU that no tunnel wants, so
under saturation exchanges wait in the spooler's memory and are stored when the load eases.
Everything that costs CPU per exchange happens here, in a process of
its own, so none of it holds the agent's GIL: decoding, redaction, capping and hashing the bodies,
header parsing, the inserts (what arrives within ``BATCH_WINDOW`` goes in one transaction), and,
after a second with nothing to store, the body index. Nothing reaches the disk unredacted: the
raw exchanges exist only in the pipe and in this process's memory.

A frame that cannot be read is counted and skipped (its seq, if readable, is answered as dropped);
a store that fails while running is answered with FAILED, and later exchanges as not stored. The
process ends when its stdin does (the agent closed it, or died), after storing what it has.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import fields
from pathlib import Path
from typing import BinaryIO

from inspector import pipe_codec as pc
from inspector import pipe_records as pr
from inspector.errors import StoreError
from inspector.message_frames import decode_update
from inspector.message_rows import MessageUpdate
from inspector.model import StoredExchange, prepare
from inspector.redact import Redactor
from inspector.settings import CaptureSettings
from inspector.spooler import FRAME_OVERHEAD
from inspector.store import CaptureStore
from relay.events import RequestRecord

INDEX_STEP = 100  # exchanges indexed per transaction while nothing arrives
BATCH_WINDOW = 0.1  # seconds a batch stays open for more exchanges
INDEX_AFTER_IDLE = 1.0  # seconds without writes before the body index catches up
READ_SIZE = 256 * 1024  # os.read allocates this much before it reads: not more than a batch
# Where SCHED_IDLE is missing (not Linux): as far below the tunnels as nice goes; on Linux, the
# nice of the store's own autogroup.
WRITER_NICE = 19
_EOF = pc.Item(0, b"")
NOT_STORED = -1
# A batch's exchanges as read: (seq, count, prepared exchange or None: not stored). Count is
# more than 1 only for an unreadable batch frame, answered as not stored all at once.
_Entry = tuple[int, int, "StoredExchange | None"]


def settings_from_json(text: str) -> CaptureSettings:
    data = json.loads(text)
    known = {f.name for f in fields(CaptureSettings)}
    data = {k: v for k, v in data.items() if k in known}
    data["path"] = Path(data["path"])
    for name in ("redact_headers", "redact_keys"):
        data[name] = tuple(data.get(name, ()))
    return CaptureSettings(**data)


def max_frame(settings: CaptureSettings) -> int:
    """The longest frame an honest agent sends: a batch of all it may have in flight (its heads
    and bodies within queue_bytes, each row's numbers and address within FRAME_OVERHEAD, as the
    spooler counts them), and never less than one exchange with two bodies at the cap.

    (The agent captures more than body_cap, the store cuts: a bound of one exchange at the cap,
    made for the retired one-exchange frame, skipped whole batches unread.)"""
    batch = settings.queue_bytes + settings.queue_size * FRAME_OVERHEAD
    return max(batch, 2 * settings.body_cap + 2 * 1024 * 1024 + 6 * pc.MAX_TEXT)


def error_json(exc: StoreError) -> dict[str, str]:
    return {"kind": type(exc).__name__, "path": str(exc.path), "message": exc.message}


class StoreLoop:
    """Takes decoded frames from ``items`` and stores them; answers through ``send``."""

    def __init__(self, store: CaptureStore, settings: CaptureSettings, out: BinaryIO) -> None:
        self.store = store
        self.settings = settings
        self.out = out
        self.redactor = Redactor(settings.all_redact_headers, settings.all_redact_keys)
        self.failed = False
        self.unreadable = 0  # frames refused (damaged or hostile)
        self.indexed = not store.fts  # False while stored exchanges may await the body index
        self.index_waiters: list[int] = []
        self._pending: deque[pc.Item] = deque()  # items of the last chunk not yet handled
        # Tunnel id -> (name, local target), from the writer's TUNNEL frames (at most MAX_NAMED).
        self.tunnels: dict[int, tuple[str, str]] = {}

    def _get(self, items: queue.Queue[list[pc.Item]], timeout: float | None) -> pc.Item:
        """The next item: from the chunk at hand, else the next chunk (queue.Empty after
        ``timeout``)."""
        if not self._pending:
            self._pending.extend(items.get(timeout=timeout))
        return self._pending.popleft()

    def send(self, data: bytes) -> None:
        try:
            self.out.write(data)
            self.out.flush()
        except (BrokenPipeError, ValueError):
            pass  # the agent is gone: store what is left all the same

    def run(self, items: queue.Queue[list[pc.Item]]) -> None:
        stopping = False
        last_write = time.monotonic()
        self.indexed = not self.store.fts  # an earlier run may have left some to index
        while not stopping:
            timeout = None
            if not self.indexed:
                timeout = max(0.0, last_write + INDEX_AFTER_IDLE - time.monotonic())
            try:
                item: pc.Item | None = self._get(items, timeout)
            except queue.Empty:
                self._index_step()
                continue
            batch: list[_Entry] = []
            messages: list[MessageUpdate] = []
            flushed: list[int] = []
            closes = time.monotonic() + BATCH_WINDOW
            while item is not None:
                if item is _EOF:
                    stopping = True
                elif item.kind == pr.RECORDS:
                    self._take_batch(item.payload, batch)
                elif item.kind == pr.TUNNEL:
                    self._take_tunnel(item.payload)
                elif item.kind == pc.OVERSIZED:
                    self._oversized(item.payload, batch)
                elif item.kind == pc.MESSAGES:
                    self._take_messages(item.payload, messages)
                elif item.kind in (pc.FLUSH, pc.INDEXED):
                    token = self._token(item.payload)
                    if token is not None:
                        waiters = flushed if item.kind == pc.FLUSH else self.index_waiters
                        waiters.append(token)
                else:  # a kind nobody sends (1 among them: the retired one-exchange frame)
                    self.unreadable += 1
                if (
                    stopping
                    or flushed
                    or self.index_waiters
                    or (len(batch) >= self.settings.batch_size)
                ):
                    break  # someone waits: write now
                remaining = closes - time.monotonic()
                try:
                    item = self._get(items, remaining) if remaining > 0 else None
                except queue.Empty:
                    item = None
            if batch:
                size = self.settings.batch_size  # a batch frame may bring more than that
                for start in range(0, len(batch), size):
                    self._write(batch[start : start + size])
                last_write = time.monotonic()
            if messages:  # of exchanges stored before (their ids came back first)
                self._write_messages(messages)
            for token in flushed:
                self.send(pc.token_frame(pc.FLUSHED, token))
            if self.indexed:
                self._answer_indexed()

    def _token(self, payload: bytes) -> int | None:
        try:
            return pc.decode_token(payload)
        except pc.FrameError:
            self.unreadable += 1  # nobody can be waiting for a token we cannot read
            return None

    def _take_tunnel(self, payload: bytes) -> None:
        """A tunnel id's name and local target (pipe_records.TUNNEL), for the records after it.
        Unreadable, or one name too many: counted; the records that use it are refused."""
        try:
            tunnel_id, tunnel, target = pr.decode_tunnel(payload)
        except pc.FrameError:
            self.unreadable += 1
            return
        if tunnel_id not in self.tunnels and len(self.tunnels) >= pr.MAX_NAMED:
            self.unreadable += 1
            return
        self.tunnels[tunnel_id] = (tunnel, target)

    def _oversized(self, begun: bytes, batch: list[_Entry]) -> None:
        """A frame over the bound, skipped unread (the decoder counted it): a batch's exchanges
        are answered as not stored, so the agent counts them dropped and a flush answers."""
        if begun[:1] == bytes((pr.RECORDS,)):
            seqs = pr.records_seqs(begun[1:])
            if seqs is not None:
                batch.append((seqs[0], seqs[1], None))

    def _take_batch(self, payload: bytes, batch: list[_Entry]) -> None:
        """A batch of exchanges (pipe_records.RECORDS): unreadable, all of it is answered as
        not stored when its seqs can be read."""
        try:
            decoded = pr.decode_records(payload, self.tunnels)
        except pc.FrameError:
            self.unreadable += 1
            seqs = pr.records_seqs(payload)
            if seqs is not None:
                batch.append((seqs[0], seqs[1], None))
            return
        for seq, tunnel, target, record in decoded:
            if not record.method:  # its address held a NUL: the writer sent no request head
                self.unreadable += 1
                batch.append((seq, 1, None))
                continue
            self._prepare(seq, tunnel, target, record, batch)

    def _prepare(
        self, seq: int, tunnel: str, target: str, record: RequestRecord, batch: list[_Entry]
    ) -> None:
        try:
            stored = prepare(tunnel, record, self.redactor, self.settings.body_cap, target=target)
        except Exception:  # a record we cannot read must not stop the writer
            self.unreadable += 1
            batch.append((seq, 1, None))
            return
        batch.append((seq, 1, stored))

    def _take_messages(self, payload: bytes, messages: list[MessageUpdate]) -> None:
        try:
            messages.append(decode_update(payload))
        except pc.FrameError:
            self.unreadable += 1  # a damaged update costs its own messages only

    def _write_messages(self, messages: list[MessageUpdate]) -> None:
        if self.failed:
            return
        try:
            self.store.add_messages(messages)
        except StoreError as exc:
            self._fail(exc)

    def _write(self, batch: list[_Entry]) -> None:
        """Store the batch; answer it in seq order as runs: (first seq, first id, count) for
        exchanges stored with consecutive ids, (first seq, -1, count) for those that were not."""
        kept = [stored for _, _, stored in batch if stored is not None]
        ids: list[int] = []
        if kept and not self.failed:
            try:
                ids = self.store.add(kept)
            except StoreError as exc:
                self._fail(exc)
                ids = []
            else:
                self.indexed = not self.store.fts
        runs: list[list[int]] = []
        given = iter(ids)
        for seq, count, stored in batch:
            exchange_id = next(given, NOT_STORED) if stored is not None else NOT_STORED
            if runs:
                last = runs[-1]
                follows = last[0] + last[2] == seq
                if follows and exchange_id == NOT_STORED and last[1] == NOT_STORED:
                    last[2] += count
                    continue
                # (Not after a run of unstored ones: -1 + its count could equal the id.)
                stored_run = exchange_id != NOT_STORED and last[1] != NOT_STORED
                if follows and stored_run and last[1] + last[2] == exchange_id:
                    last[2] += count
                    continue
            runs.append([seq, exchange_id, count])
        self.send(pr.runs_frame(pc.STORED, [(s, i, n) for s, i, n in runs]))

    def _fail(self, exc: StoreError) -> None:
        self.failed = True
        self.indexed = True
        self.send(pc.json_frame(pc.FAILED, error_json(exc)))

    def _index_step(self) -> None:
        if self.failed:
            self.indexed = True
        else:
            try:
                if self.store.index_some(INDEX_STEP) == 0:
                    self.indexed = True
            except StoreError as exc:
                self._fail(exc)
        if self.indexed:
            self._answer_indexed()

    def _answer_indexed(self) -> None:
        for token in self.index_waiters:
            self.send(pc.token_frame(pc.INDEXED_DONE, token))
        self.index_waiters.clear()


def read_frames(source: int, decoder: pc.FrameDecoder, items: queue.Queue[list[pc.Item]]) -> None:
    """Reads the pipe until EOF, the frames of each read onto ``items`` as one list (one hand-off
    between the threads per read, not per frame); then [_EOF]."""
    try:
        while True:
            data = os.read(source, READ_SIZE)
            if not data:
                break
            got = decoder.feed(data)
            if got:
                items.put(got)
    except OSError:
        pass
    finally:
        items.put([_EOF])


def lower_priority() -> None:
    """Run only on CPU nobody else wants: the tunnels never compete with the store. (At nice 10
    it still took a share of a saturated core; SCHED_IDLE alone starved because the agent's pipe
    filled: the spooler in front of this process now holds what waits, in memory.)"""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(AttributeError, OSError):  # AttributeError: no os.nice (Windows)
            os.nice(WRITER_NICE)
    leave_front_ends_group()


def leave_front_ends_group() -> None:
    """A session of its own, whose scheduling group is at the lowest weight (Linux autogroups).

    With autogroups (the kernel's default on desktops and most VMs) the CPU is shared between
    sessions first and between a session's processes second, so SCHED_IDLE only ranks the store
    below the agent that started it: each time the agent waited on the relay or the local app,
    its session's share went to the store. On one busy core the store took 16-20% of it and
    the tunnel lost a third of its requests per second; in a group of its own at nice 19 it
    takes about 1% there. Best effort: elsewhere (no autogroups, or a cgroup per service) the
    file is missing or ignored and SCHED_IDLE is all there is."""
    with contextlib.suppress(AttributeError, OSError):  # no setsid (Windows), or already a leader
        os.setsid()
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as group:
        group.write(str(WRITER_NICE))


def main(argv: list[str]) -> int:
    # The agent's terminal's Ctrl-C reaches this process too: it ends when its stdin ends,
    # after storing what the agent sent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lower_priority()
    if len(argv) != 2:
        print("usage: python -m inspector.capture_process SETTINGS_JSON", file=sys.stderr)
        return 2
    settings = settings_from_json(argv[1])
    # Answers go to the original stdout; anything else printed goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        store = CaptureStore(
            settings.file,
            create=True,
            max_bytes=settings.max_bytes,
            busy_timeout=settings.busy_timeout,
        )
    except StoreError as exc:
        out.write(pc.json_frame(pc.OPEN_FAILED, error_json(exc)))
        out.flush()
        return 1
    loop = StoreLoop(store, settings, out)
    loop.send(pc.frame(pc.READY))
    items: queue.Queue[list[pc.Item]] = queue.Queue()  # bounded by the agent: what it has in flight
    decoder = pc.FrameDecoder(max_frame(settings))
    reader = threading.Thread(target=read_frames, args=(0, decoder, items), daemon=True)
    reader.start()
    try:
        loop.run(items)
    finally:
        store.close()
    unreadable = loop.unreadable + decoder.skipped + (1 if decoder.pending else 0)
    if unreadable:
        print(f"molehill capture writer: {unreadable} unreadable frame(s) skipped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
