"""Tunnel ids on the pipe: named once, then used by batches; the store process refuses the rest."""

from __future__ import annotations

import sqlite3

from inspector import CaptureSettings, open_writer
from inspector import pipe_codec as pc
from inspector import pipe_records as pr
from tests.inspector.records import exchange, store_process
from tests.inspector.test_capture_pipe import _answers
from tests.inspector.test_pipe_records import _row, flat


def _batch(first: int, rows: list[pr.Row]) -> bytes:
    return b"".join(pr.pack_batch(first, flat(rows))[0])


def test_the_store_process_names_batches_by_tunnel_id_and_refuses_unnamed_ids(tmp_path):
    settings = CaptureSettings(path=tmp_path / "c.sqlite3", body_cap=1024)
    proc = store_process(settings)
    assert proc.stdin is not None and proc.stderr is not None
    try:
        assert [i.kind for i in _answers(proc, pc.READY)] == [pc.READY]
        frames = [
            _batch(1, [_row(exchange("GET", "/early"), tunnel_id=0)]),  # before its name
            pc.frame(pr.TUNNEL, b"\x00\x01"),  # cut short
            pr.tunnel_frame(0, "web", "http://127.0.0.1:3000"),
            pr.tunnel_frame(7, "café ☕", "https://[::1]:8443"),
            _batch(2, [_row(exchange("GET", "/a"), tunnel_id=0)]),
            _batch(3, [_row(exchange("GET", "/b"), tunnel_id=7), _row(exchange("GET", "/c"))]),
            _batch(5, [_row(exchange("GET", "/d"), tunnel_id=8)]),  # never named
            pc.token_frame(pc.FLUSH, 1),
        ]
        proc.stdin.write(b"".join(frames))
        proc.stdin.flush()
        answers = _answers(proc, pc.FLUSHED)
        stored = [p for i in answers if i.kind == pc.STORED for p in pr.stored_pairs(i.payload)]
        dropped = [s for i in answers if i.kind == pc.STORED for s in pr.dropped_seqs(i.payload)]
        assert [seq for seq, _ in stored] == [2, 3, 4]
        assert dropped == [1, 5]
        proc.stdin.close()
        assert proc.wait(30) == 0
        assert b"unreadable frame" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with sqlite3.connect(settings.file) as db:
        rows = db.execute("SELECT path, tunnel, target FROM exchanges ORDER BY id").fetchall()
    assert rows == [
        ("/a", "web", "http://127.0.0.1:3000"),
        ("/b", "café ☕", "https://[::1]:8443"),
        ("/c", "web", "http://127.0.0.1:3000"),
    ]


def test_a_writer_names_each_tunnel_and_target_once_and_keeps_them_apart(tmp_path):
    writer = open_writer(CaptureSettings(path=tmp_path / "c.sqlite3"))
    try:
        targets = ["http://127.0.0.1:3000", "http://127.0.0.1:4000"]
        for i in range(30):
            # Equal strings that are not the same objects take the lookup, not the shortcut.
            tunnel = "".join(["api", "web"][i % 2])
            record = exchange("GET", f"/{i}", resp_body=b"ok")
            if i % 5 == 0:
                record.capture = None  # no heads nor bodies: stored without them
            writer.submit(tunnel, record, targets[i % 3 == 0])
        assert writer.flush()
        assert len(writer._tunnel_ids) == 4  # (api|web) x (3000|4000)
        assert writer.written == 30 and writer.dropped == 0
    finally:
        writer.close()
    with sqlite3.connect(tmp_path / "c.sqlite3") as db:
        got = db.execute(
            "SELECT path, tunnel, target, length(resp_body), req_truncated FROM exchanges"
            " ORDER BY id"
        ).fetchall()
    assert got == [
        (f"/{i}", ["api", "web"][i % 2], targets[i % 3 == 0], 0 if i % 5 == 0 else 2, 0)
        for i in range(30)
    ]


def test_an_exchange_without_a_capture_whose_path_makes_no_request_line_goes_alone(tmp_path):
    writer = open_writer(CaptureSettings(path=tmp_path / "c.sqlite3"))
    try:
        for path in ("/before", "/a space", "/nul\0", "/caf\u00e9 \u2615", "/after"):
            record = exchange("GET", "/x")
            record.capture, record.path = None, path  # made by hand: no observer makes these
            writer.submit("api", record)
        assert writer.flush()
        assert writer.written == 2 and writer.dropped == 3  # not kept, counted; not the batch
    finally:
        writer.close()
    with sqlite3.connect(tmp_path / "c.sqlite3") as db:
        got = db.execute("SELECT path FROM exchanges ORDER BY id").fetchall()
    assert got == [("/before",), ("/after",)]


def test_the_store_holds_at_most_max_named_tunnel_names(tmp_path, monkeypatch):
    import io

    from inspector.capture_process import StoreLoop
    from inspector.store import CaptureStore

    monkeypatch.setattr(pr, "MAX_NAMED", 2)
    settings = CaptureSettings(path=tmp_path / "c.sqlite3")
    store = CaptureStore(settings.file, create=True)
    try:
        loop = StoreLoop(store, settings, io.BytesIO())
        for tunnel_id in (0, 1, 2, 1):
            (item,) = pc.FrameDecoder(1 << 20).feed(pr.tunnel_frame(tunnel_id, f"t{tunnel_id}", ""))
            loop._take_tunnel(item.payload)
        # The third name is one too many (counted); renaming a known id is not.
        assert loop.tunnels == {0: ("t0", ""), 1: ("t1", "")} and loop.unreadable == 1
    finally:
        store.close()
