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
from tests.inspector.records import (
    exchange,
    observe,
    request_bytes,
    response_bytes,
    store_process,
)


def _frames(data: bytes, max_size: int = 1 << 20) -> list[pc.Item]:
    return pc.FrameDecoder(max_size).feed(data)


def test_a_record_crosses_the_pipe_unchanged():
    record = exchange(
        "POST",
        "/pay?x=1",
        201,
        req_headers=[("Authorization", "Bearer s3cr3t-token")],
        req_body=b'{"amount": 5}',
        resp_body=bytes(range(256)),
    )
    record.capture.response_truncated = True  # type: ignore[union-attr]
    data = b"".join(pc.record_pieces(7, "api", "http://127.0.0.1:3000", record))
    (item,) = _frames(data)
    assert item.kind == pc.RECORD
    decoded = pc.decode_record(item.payload)
    assert (decoded.seq, decoded.tunnel, decoded.target) == (7, "api", "http://127.0.0.1:3000")
    got = decoded.record
    for name in ("time", "method", "path", "status", "duration_ms", "ttfb_ms", "bytes_in"):
        assert getattr(got, name) == getattr(record, name), name
    assert (got.bytes_out, got.client, got.http_version) == (
        record.bytes_out,
        record.client,
        record.http_version,
    )
    assert got.capture == record.capture  # heads, bodies and both truncation marks


def test_a_record_without_capture_or_response_crosses_too():
    record = observe(request_bytes("GET", "/gone"), None, capture_bytes=0)
    assert record.capture is None and record.ttfb_ms is None
    (item,) = _frames(b"".join(pc.record_pieces(1, "t", "", record)))
    got = pc.decode_record(item.payload).record
    assert got.capture is None and got.ttfb_ms is None and got.status == record.status


def test_frames_split_anywhere_decode_the_same():
    records = [exchange("GET", f"/{i}", resp_body=b"x" * i) for i in range(5)]
    data = b"".join(b"".join(pc.record_pieces(i, "t", "", r)) for i, r in enumerate(records))
    data += pc.token_frame(pc.FLUSH, 99)
    whole = _frames(data)
    for cut in range(1, 40):
        decoder = pc.FrameDecoder(1 << 20)
        parts = [data[i : i + cut] for i in range(0, len(data), cut)]
        assert [x for part in parts for x in decoder.feed(part)] == whole
    assert [i.kind for i in whole] == [pc.RECORD] * 5 + [pc.FLUSH]


def test_an_oversized_frame_is_skipped_and_the_next_one_found():
    decoder = pc.FrameDecoder(max_frame=100)
    big = struct.pack("<I", 5000) + bytes(5000)
    after = pc.token_frame(pc.FLUSH, 3)
    items = decoder.feed(big[:1000]) + decoder.feed(big[1000:] + after)
    assert decoder.skipped == 1
    assert items == [pc.Item(pc.FLUSH, struct.pack("<Q", 3))]


def test_random_bytes_never_break_the_decoder():
    rng = random.Random(13)
    for _ in range(300):
        decoder = pc.FrameDecoder(max_frame=4096)
        blob = rng.randbytes(rng.randrange(0, 3000))
        for item in decoder.feed(blob):
            # Refused with a reason (what the writer process counts and skips), or read.
            with contextlib.suppress(pc.FrameError):
                pc.decode_record(item.payload)


def _good_payload() -> bytes:
    (item,) = _frames(b"".join(pc.record_pieces(5, "t", "", exchange())))
    return item.payload


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda p: p[:20], "shorter than its fixed part"),
        (lambda p: p + b"extra", "add up to"),
        (lambda p: p[:-3], "add up to"),
        (lambda p: p[:8] + struct.pack("<d", float("nan")) + p[16:], "out of range"),
        (lambda p: p[:32] + struct.pack("<i", 70000) + p[36:], "out of range"),
        (lambda p: p[:52] + b"\xff" + p[53:], "unknown flags"),
    ],
)
def test_a_damaged_record_is_refused_with_a_reason(damage, says):
    with pytest.raises(pc.FrameError, match=says):
        pc.decode_record(damage(_good_payload()))


def test_names_that_are_not_utf8_or_too_long_are_refused():
    payload = bytearray(_good_payload())
    tunnel_at = pc._FIXED.size
    payload[tunnel_at] = 0xFF  # the tunnel name's first byte
    with pytest.raises(pc.FrameError, match="not UTF-8"):
        pc.decode_record(bytes(payload))
    record = exchange()
    record.path = "/" + "a" * (pc.MAX_TEXT + 1)
    (item,) = _frames(b"".join(pc.record_pieces(1, "t", "", record)))
    with pytest.raises(pc.FrameError, match="longer than"):
        pc.decode_record(item.payload)


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


def test_hostile_frames_on_the_pipe_do_not_stop_the_writer_process(tmp_path):
    settings = CaptureSettings(path=tmp_path / "c.sqlite3", body_cap=1024)
    proc = store_process(settings)
    assert proc.stdin is not None and proc.stderr is not None
    try:
        assert [i.kind for i in _answers(proc, pc.READY)] == [pc.READY]
        good = exchange("POST", "/kept", 200, req_body=b"fine")
        bad = bytearray(_good_payload())
        bad[:8] = struct.pack("<Q", 41)  # seq 41, then lengths that do not add up
        hostile = [
            pc.frame(pc.RECORD, bytes(bad[:-10])),  # a record cut short
            pc.frame(200, b"what is this"),  # a kind nobody knows
            pc.frame(pc.FLUSH, b"\x01"),  # a token of the wrong size
            struct.pack("<I", max_frame(settings) + 1) + bytes(4096),  # a length gone wrong...
            bytes(max_frame(settings) + 1 - 4096),  # ...and the rest of that frame
            pc.frame(pc.RECORD, random.Random(1).randbytes(300)),
            b"".join(pc.record_pieces(42, "api", "", good)),
            pc.token_frame(pc.FLUSH, 7),
        ]
        proc.stdin.write(b"".join(hostile))
        proc.stdin.flush()
        answers = _answers(proc, pc.FLUSHED)
        stored = [p for i in answers if i.kind == pc.STORED for p in pr.stored_pairs(i.payload)]
        dropped = [s for i in answers if i.kind == pc.STORED for s in pr.dropped_seqs(i.payload)]
        assert [seq for seq, _ in stored] == [42]
        assert 41 in dropped
        assert proc.poll() is None  # still running
        proc.stdin.close()  # EOF: the process ends on its own
        assert proc.wait(30) == 0
        assert b"unreadable frame" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with sqlite3.connect(settings.file) as db:
        assert db.execute("SELECT path FROM exchanges").fetchall() == [("/kept",)]


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
