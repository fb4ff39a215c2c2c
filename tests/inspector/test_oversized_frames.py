"""A batch frame over the store's bound is skipped unread, and its exchanges are answered as not
stored: the agent counts them dropped and a flush answers, instead of waiting for nothing."""

from __future__ import annotations

import sqlite3
import struct

from inspector import CaptureSettings
from inspector import pipe_codec as pc
from inspector import pipe_records as pr
from inspector.capture_process import max_frame
from tests.inspector.records import exchange, store_process
from tests.inspector.test_capture_pipe import _answers, _batch, sent_and_flushed


def test_the_decoder_says_what_an_oversized_frame_began_with_however_it_is_split():
    payload = _batch(50, [exchange("GET", "/a"), exchange("GET", "/b")])[4:]  # kind + payload
    big = struct.pack("<I", len(payload)) + payload
    after = pc.token_frame(pc.FLUSH, 9)
    expected = [
        pc.Item(pc.OVERSIZED, payload[: 1 + pc.OVERSIZED_PREFIX]),
        pc.Item(pc.FLUSH, struct.pack("<Q", 9)),
    ]
    for at in range(len(big) + 1):  # the prefix cut anywhere, the rest anywhere
        decoder = pc.FrameDecoder(max_frame=len(payload) - 1)
        items = decoder.feed(big[:at]) + decoder.feed(big[at:] + after)
        assert (items, decoder.skipped, decoder.pending) == (expected, 1, 0), at
    begun = expected[0].payload
    assert begun[0] == pr.RECORDS and pr.records_seqs(begun[1:]) == (50, 2)


def test_a_frame_of_length_zero_has_no_kind_and_is_only_counted():
    decoder = pc.FrameDecoder(max_frame=1 << 20)
    items = decoder.feed(struct.pack("<I", 0) + pc.token_frame(pc.FLUSH, 1))
    assert items == [pc.Item(pc.FLUSH, struct.pack("<Q", 1))]
    assert decoder.skipped == 1


def test_an_oversized_batch_is_answered_as_not_stored(tmp_path):
    settings = CaptureSettings(
        path=tmp_path / "c.sqlite3", body_cap=1024, queue_bytes=1 << 20, queue_size=100
    )
    huge = b"x" * (max_frame(settings) + 1)  # a body no batch within the bounds can carry
    proc = store_process(settings)
    assert proc.stdin is not None and proc.stderr is not None
    try:
        assert [i.kind for i in _answers(proc, pc.READY)] == [pc.READY]
        sent = [
            pr.tunnel_frame(0, "api", ""),
            _batch(60, [exchange("POST", "/big", 200, req_body=huge), exchange("GET", "/x")]),
            _batch(62, [exchange("GET", "/kept")]),
            pc.token_frame(pc.FLUSH, 4),
        ]
        stored, dropped = sent_and_flushed(proc, sent)
        assert stored == [62]
        assert sorted(dropped) == [60, 61]
        proc.stdin.close()
        assert proc.wait(30) == 0
        assert b" 1 unreadable frame(s) skipped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with sqlite3.connect(settings.file) as db:
        assert db.execute("SELECT path FROM exchanges").fetchall() == [("/kept",)]
