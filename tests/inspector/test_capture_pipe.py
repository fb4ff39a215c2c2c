"""The pipe to the capture writer process: its frames, hostile input, a writer process that dies."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import struct
import subprocess
import time

import pytest

from inspector import CaptureSettings, CaptureWriter, StoreError, open_writer
from inspector import pipe_codec as pc
from inspector import pipe_records as pr
from inspector.capture_process import max_frame
from relay.events import RequestRecord
from tests.inspector.records import (
    exchange,
    observe,
    request_bytes,
    response_bytes,
    store_process,
)
from tests.inspector.test_pipe_records import _row, flat

TARGET = "http://127.0.0.1:3000"
# What the pipe carries of a RequestRecord (stream and the app's timings stay in the agent).
CARRIED = (
    "time",
    "method",
    "path",
    "status",
    "duration_ms",
    "ttfb_ms",
    "bytes_in",
    "bytes_out",
    "client",
    "http_version",
    "capture",
)


def _frames(data: bytes, max_size: int = 1 << 20) -> list[pc.Item]:
    return pc.FrameDecoder(max_size).feed(data)


def _batch(first: int, records: list[RequestRecord], tunnel_id: int = 0) -> bytes:
    """One RECORDS frame of ``records`` (seqs first, first + 1, ...), as the writer packs it."""
    return b"".join(pr.pack_batch(first, flat([_row(r, tunnel_id) for r in records]))[0])


def _sent(first: int, records: list[RequestRecord]) -> bytes:
    """What the writer sends for records of one tunnel: its TUNNEL frame, then one batch."""
    return pr.tunnel_frame(0, "api", TARGET) + _batch(first, records)


def _decoded(items: list[pc.Item]) -> list[tuple[int, str, str, RequestRecord]]:
    """Frames read as the store reads them: TUNNEL names an id, RECORDS use the names so far."""
    tunnels: dict[int, tuple[str, str]] = {}
    out = []
    for item in items:
        if item.kind == pr.TUNNEL:
            tunnel_id, tunnel, target = pr.decode_tunnel(item.payload)
            tunnels[tunnel_id] = (tunnel, target)
        elif item.kind == pr.RECORDS:
            out += pr.decode_records(item.payload, tunnels)
    return out


def test_exchanges_cross_the_pipe_unchanged():
    paid = exchange(
        "POST",
        "/pay?x=1",
        201,
        req_headers=[("Authorization", "Bearer s3cr3t-token")],
        req_body=b'{"amount": 5}',
        resp_body=bytes(range(256)),
    )
    paid.capture.response_truncated = True  # type: ignore[union-attr]
    paid.duration_ms = 12.345
    cut = exchange("PUT", "/cut", req_body=b"y" * 100, capture_bytes=10)
    assert cut.capture is not None and cut.capture.request_truncated
    items = _frames(_sent(7, [paid, cut]))
    assert [i.kind for i in items] == [pr.TUNNEL, pr.RECORDS]
    decoded = _decoded(items)
    assert [(seq, tunnel, target) for seq, tunnel, target, _ in decoded] == [
        (7, "api", TARGET),
        (8, "api", TARGET),
    ]
    for (_, _, _, got), want in zip(decoded, [paid, cut], strict=True):
        for name in CARRIED:  # the capture: heads, bodies and both truncation marks
            assert getattr(got, name) == getattr(want, name), name
    # Raw on the pipe, secrets included: the store process redacts before anything is stored.
    assert b"Bearer s3cr3t-token" in decoded[0][3].capture.request_head  # type: ignore[union-attr]


def test_an_exchange_without_capture_or_response_crosses_too():
    record = observe(request_bytes("GET", "/gone"), None, capture_bytes=0)
    assert record.capture is None and record.ttfb_ms is None
    ((_, _, _, got),) = _decoded(_frames(_sent(1, [record])))
    assert got.capture is None  # the request line it went with is not kept as a capture
    for name in CARRIED:
        assert getattr(got, name) == getattr(record, name), name


def test_frames_split_anywhere_decode_the_same():
    records = [exchange("GET", f"/{i}", resp_body=b"x" * i) for i in range(5)]
    data = _sent(0, records) + pr.tunnel_frame(1, "web", "") + _batch(5, records[:2], tunnel_id=1)
    data += pc.token_frame(pc.FLUSH, 99)
    whole = _frames(data)  # several frames in one read
    kinds = [pr.TUNNEL, pr.RECORDS, pr.TUNNEL, pr.RECORDS, pc.FLUSH]
    assert [i.kind for i in whole] == kinds
    assert [(seq, r.path) for seq, _, _, r in _decoded(whole)] == [
        *((i, f"/{i}") for i in range(5)),
        (5, "/0"),
        (6, "/1"),
    ]
    for cut in range(1, 40):
        decoder = pc.FrameDecoder(1 << 20)
        parts = [data[i : i + cut] for i in range(0, len(data), cut)]
        assert [x for part in parts for x in decoder.feed(part)] == whole
    for at in range(len(data) + 1):  # every boundary, between frames and inside them
        decoder = pc.FrameDecoder(1 << 20)
        assert decoder.feed(data[:at]) + decoder.feed(data[at:]) == whole
        assert decoder.pending == 0


def test_an_oversized_frame_is_skipped_and_the_next_one_found():
    decoder = pc.FrameDecoder(max_frame=100)
    big = struct.pack("<I", 5000) + bytes(5000)
    after = pc.token_frame(pc.FLUSH, 3)
    items = decoder.feed(big[:1000]) + decoder.feed(big[1000:] + after)
    assert decoder.skipped == 1
    begun = pc.Item(pc.OVERSIZED, bytes(1 + pc.OVERSIZED_PREFIX))  # its kind and first bytes
    assert items == [begun, pc.Item(pc.FLUSH, struct.pack("<Q", 3))]


def test_random_bytes_never_break_the_decoders():
    rng = random.Random(13)
    tunnels = {0: ("api", TARGET)}
    for _ in range(300):
        decoder = pc.FrameDecoder(max_frame=4096)
        blob = rng.randbytes(rng.randrange(0, 3000))
        # Random lengths are mostly too long: frames of random payloads reach the decoders too.
        kind = rng.choice((pr.RECORDS, pr.TUNNEL))
        items = decoder.feed(blob) + _frames(pc.frame(kind, rng.randbytes(rng.randrange(200))))
        for item in items:
            # Refused with a reason (what the writer process counts and skips), or read.
            with contextlib.suppress(pc.FrameError):
                pr.decode_records(item.payload, tunnels)
            with contextlib.suppress(pc.FrameError):
                pr.decode_tunnel(item.payload)


def _good_payload() -> bytes:
    """The RECORDS payload of one exchange, seq 5: head (16 bytes), 3 floats, 7 integers..."""
    (item,) = _frames(_batch(5, [exchange()]))
    return item.payload


# Damage on the way (bytes changed in the packed frame, not values the packer was given: those
# are in test_pipe_records). Offsets: the head is 16 bytes, then time, duration, ttfb, flags.
@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda p: p[:10], "shorter than its head"),
        (lambda p: p + b"extra", "do not add up"),
        (lambda p: p[:-3], "do not add up"),
        (lambda p: p[:8] + struct.pack("<I", 2) + p[12:], "need at least|do not add up"),
        (lambda p: p[:16] + struct.pack("<d", float("nan")) + p[24:], "out of range"),
        (lambda p: p[:24] + struct.pack("<d", float("inf")) + p[32:], "out of range"),
        (lambda p: p[:40] + struct.pack("<q", 70000) + p[48:], "out of range"),
        (lambda p: p[:40] + struct.pack("<q", 200 | 2 << pr.ANSWER_CUT_SHIFT) + p[48:], "flags"),
    ],
)
def test_a_damaged_batch_is_refused_with_a_reason(damage, says):
    payload = damage(_good_payload())
    with pytest.raises(pc.FrameError, match=says):
        pr.decode_records(payload, {0: ("t", "")})
    if len(payload) >= 16:  # its seqs still readable: the store answers them as not stored
        assert pr.records_seqs(payload) is not None


def _answers(proc: subprocess.Popen[bytes], until: int) -> list[pc.Item]:
    """Frames from the writer process until one of kind ``until`` arrives."""
    assert proc.stdout is not None
    decoder = pc.FrameDecoder(1 << 20)
    out: list[pc.Item] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        data = os.read(proc.stdout.fileno(), 65536)
        assert data, "the writer process closed its answers"
        out += decoder.feed(data)
        if any(i.kind == until for i in out):
            return out
    raise AssertionError(f"no answer of kind {until}: {out}")


def sent_and_flushed(proc: subprocess.Popen[bytes], frames: list[bytes]) -> tuple[list, list]:
    """Write ``frames`` to a store process, wait for the FLUSHED they end with; the seqs it
    answered as stored, and as not stored."""
    assert proc.stdin is not None
    proc.stdin.write(b"".join(frames))
    proc.stdin.flush()
    answers = [i for i in _answers(proc, pc.FLUSHED) if i.kind == pc.STORED]
    stored = [seq for i in answers for seq, _ in pr.stored_pairs(i.payload)]
    return stored, [seq for i in answers for seq in pr.dropped_seqs(i.payload)]


def test_hostile_frames_on_the_pipe_do_not_stop_the_writer_process(tmp_path):
    settings = CaptureSettings(
        path=tmp_path / "c.sqlite3", body_cap=1024, queue_bytes=1 << 20, queue_size=100
    )
    proc = store_process(settings)
    assert proc.stdin is not None and proc.stderr is not None
    try:
        assert [i.kind for i in _answers(proc, pc.READY)] == [pc.READY]
        good = exchange("POST", "/kept", 200, req_body=b"fine")
        bad = _batch(41, [exchange("GET", "/lost")])
        hostile = [
            pr.tunnel_frame(0, "api", ""),
            pc.frame(pr.RECORDS, bad[5:-10]),  # a batch cut short: seq 41 readable
            pc.frame(200, b"what is this"),  # a kind nobody knows
            pc.frame(pc.FLUSH, b"\x01"),  # a token of the wrong size
            struct.pack("<I", max_frame(settings) + 1) + bytes(4096),  # a length gone wrong...
            bytes(max_frame(settings) + 1 - 4096),  # ...and the rest of that frame
            pc.frame(pr.RECORDS, random.Random(1).randbytes(300)),
            _batch(42, [good]),
            pc.token_frame(pc.FLUSH, 7),
        ]
        stored, dropped = sent_and_flushed(proc, hostile)
        assert stored == [42]
        assert 41 in dropped
        assert proc.poll() is None  # still running
        proc.stdin.close()  # EOF: the process ends on its own
        assert proc.wait(30) == 0
        assert b" 5 unreadable frame(s) skipped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with sqlite3.connect(settings.file) as db:
        assert db.execute("SELECT path FROM exchanges").fetchall() == [("/kept",)]


RETIRED_RECORD = 1  # pipe_codec: the one-exchange frame's kind, retired, never to be reused


def test_the_retired_kind_1_is_refused_like_any_unknown_kind(tmp_path):
    """A frame of kind 1 (the one-exchange frame, retired) is counted and skipped, answered for
    nothing, as a kind nobody knows is: even when it holds a well-formed batch."""
    settings = CaptureSettings(path=tmp_path / "c.sqlite3", body_cap=1024)
    proc = store_process(settings)
    assert proc.stdin is not None and proc.stderr is not None
    try:
        assert [i.kind for i in _answers(proc, pc.READY)] == [pc.READY]
        payload = _batch(1, [exchange("GET", "/once")])[5:]  # a RECORDS payload, seq 1
        stored, dropped = sent_and_flushed(
            proc,
            [
                pr.tunnel_frame(0, "api", TARGET),
                pc.frame(RETIRED_RECORD, payload),
                pc.frame(200, payload),
                pc.frame(pr.RECORDS, payload),
                pc.token_frame(pc.FLUSH, 1),
            ],
        )
        assert stored == [1] and dropped == []
        proc.stdin.close()
        assert proc.wait(30) == 0
        assert b" 2 unreadable frame(s) skipped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with sqlite3.connect(settings.file) as db:
        assert db.execute("SELECT path FROM exchanges").fetchall() == [("/once",)]


def test_a_writer_process_that_dies_stops_captures_not_the_caller(tmp_path):
    errors: list[StoreError] = []
    writer = open_writer(CaptureSettings(path=tmp_path / "c.sqlite3"), on_error=errors.append)
    assert isinstance(writer, CaptureWriter)
    writer.submit("api", exchange("GET", "/before"))
    assert writer.flush()
    os.kill(writer.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while writer.error is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert writer.error is not None and errors == [writer.error]
    assert "ended unexpectedly" in str(writer.error) and str(tmp_path) in str(writer.error)
    writer.submit("api", exchange("GET", "/after"))  # never raises
    assert not writer.flush(1)  # nobody can answer it
    assert writer.written == 1 and writer.dropped == 1
    writer.close()


def test_originals_keep_the_unredacted_request_with_its_payload(tmp_path):
    writer = open_writer(CaptureSettings(path=tmp_path / "c.sqlite3"))
    assert isinstance(writer, CaptureWriter)
    chunked = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    request = request_bytes(
        "POST",
        "/hook",
        [("Authorization", "Bearer planted-secret-1"), ("Transfer-Encoding", "chunked")],
        chunked,
    )
    writer.submit("api", observe(request, response_bytes(200, body=b"ok")))
    assert writer.flush()
    writer.close()
    with sqlite3.connect(tmp_path / "c.sqlite3") as db:
        (exchange_id, head) = db.execute("SELECT id, req_head FROM exchanges").fetchone()
    assert b"planted-secret-1" not in head  # the store has the redacted copy
    original = writer.originals.get(exchange_id)
    assert original is not None
    assert b"Bearer planted-secret-1" in original.head
    assert original.body == b"hello world" and not original.truncated


def test_closing_says_what_was_not_kept(tmp_path, capsys):
    from tui.captures import close_capture_writer

    path = tmp_path / "c.sqlite3"
    writer = open_writer(CaptureSettings(path=path, queue_size=2, busy_timeout=10))
    assert isinstance(writer, CaptureWriter)
    holder = sqlite3.connect(path, isolation_level=None, timeout=5)
    holder.execute("BEGIN EXCLUSIVE")  # the writer process waits: the queue fills
    try:
        for i in range(5):
            writer.submit("api", exchange("GET", f"/{i}"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    close_capture_writer(writer)
    assert (writer.written, writer.dropped) == (2, 3)
    err = capsys.readouterr().err
    assert "request history: 3 exchange(s) not kept" in err and "2 kept" in err


def test_large_bodies_and_many_records_cross_the_pipe_intact(tmp_path):
    """Bodies larger than the pipe's buffer (partial writes) and batches of more pieces than one
    writev takes arrive whole and in order."""
    writer = open_writer(CaptureSettings(path=tmp_path / "c.sqlite3", queue_bytes=64 << 20))
    assert isinstance(writer, CaptureWriter)
    rng = random.Random(5)
    big = [rng.randbytes(3 * 1024 * 1024 + i) for i in range(3)]
    for i in range(700):
        body = big[i // 300] if i % 300 == 299 else b"r%d" % i
        writer.submit("t", exchange("POST", f"/{i}", 200, req_body=body, capture_bytes=8 << 20))
    assert writer.flush(60)
    writer.close()
    assert (writer.written, writer.dropped) == (700, 0)
    with sqlite3.connect(tmp_path / "c.sqlite3") as db:
        rows = db.execute("SELECT path, req_body FROM exchanges ORDER BY id").fetchall()
    assert [path for path, _ in rows] == [f"/{i}" for i in range(700)]
    assert rows[299][1] == big[0] and rows[599][1] == big[1]
    assert rows[5][1] == b"r5"


def test_the_bound_counts_bytes_in_and_out_or_what_a_cut_exchange_keeps(tmp_path):
    writer = open_writer(CaptureSettings(path=tmp_path / "c.sqlite3", queue_bytes=8 * 1024))
    assert isinstance(writer, CaptureWriter)
    # Over the bound by itself (its 9,000 bytes out), though nothing waits: dropped, counted.
    writer.submit("api", exchange("GET", "/big", resp_body=b"x" * 9000))
    # 100,000 bytes out, 1,000 of them kept (cut): counted as what it keeps, so it fits.
    cut = exchange("GET", "/cut", resp_body=b"y" * 100_000, capture_bytes=1000)
    assert cut.capture is not None and cut.capture.response_truncated
    writer.submit("api", cut)
    assert writer.flush()
    assert (writer.written, writer.dropped, writer.queued_bytes) == (1, 1, 0)
    writer.close()
    with sqlite3.connect(tmp_path / "c.sqlite3") as db:
        assert db.execute("SELECT path FROM exchanges").fetchall() == [("/cut",)]


def test_a_batch_larger_than_one_exchange_at_the_cap_is_stored(tmp_path):
    """The agent captures more than body_cap (the store cuts): a batch holding a body far over
    the cap is read and stored, capped, with the exchange beside it (the store's frame bound was
    one exchange's: such a batch was skipped unread, flush() said yes, and both were lost)."""
    path = tmp_path / "c.sqlite3"
    writer = open_writer(CaptureSettings(path=path, body_cap=1024, queue_bytes=8 << 20))
    assert isinstance(writer, CaptureWriter)
    writer.submit("api", exchange("POST", "/big", req_body=b"x" * 3_000_000))
    writer.submit("api", exchange("GET", "/small"))
    assert writer.flush()
    assert (writer.written, writer.dropped) == (2, 0)
    writer.close()
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT path, length(req_body), req_truncated FROM exchanges ORDER BY id"
        ).fetchall()
    assert rows == [("/big", 1024, 1), ("/small", 0, 0)]
