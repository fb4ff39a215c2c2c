"""The capture store and its writer on a real SQLite file: batching, bounds, restarts, bad files."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inspector import (
    CaptureSettings,
    CaptureStore,
    CaptureWriter,
    StoreCorrupt,
    StoreError,
    StoreLocked,
    StoreMissing,
    StoreTooNew,
    open_store,
    open_writer,
    parse,
)
from tests.inspector.records import ROOT_DIR, exchange, fill


def _writer(path: Path, **settings: object):
    writer = open_writer(CaptureSettings(path=path, **settings))  # type: ignore[arg-type]
    assert writer is not None
    return writer


def test_submitted_records_are_written_in_batches(tmp_path):
    path = tmp_path / "c.sqlite3"
    writer = _writer(path, batch_size=200)
    records = [exchange("GET", f"/item/{i}", 200, resp_body=b"ok") for i in range(1000)]
    for record in records:
        writer.submit("api", record)
    assert writer.flush()
    assert writer.written == 1000 and writer.dropped == 0
    assert 5 <= writer.batches < 1000  # several per transaction, none over batch_size
    writer.close()
    with open_store(CaptureSettings(path=path)) as store:
        assert store.count() == 1000
        newest = store.select(limit=2)
        assert [e.path for e in newest] == ["/item/999", "/item/998"]


def test_store_stays_within_its_size_by_evicting_the_oldest(tmp_path):
    path = tmp_path / "c.sqlite3"
    max_bytes = 2 * 1024 * 1024
    writer = _writer(path, max_bytes=max_bytes, batch_size=20)
    body = bytes(range(256)) * 80  # 20 KiB, binary: not compressible by anything
    for i in range(400):  # about 8 MiB of bodies
        writer.submit("api", exchange("POST", f"/upload/{i}", 201, req_body=body))
        if i % 50 == 49:
            assert writer.flush()
    assert writer.flush()
    writer.close()
    with CaptureStore(path, max_bytes=max_bytes) as store:
        assert store.used_bytes() <= max_bytes
        kept = store.select(newest_first=False)
        assert 30 < len(kept) < 400
        assert kept[-1].path == "/upload/399"  # the newest stays
        assert kept[0].path != "/upload/0"
        ids = [e.id for e in kept]
        assert ids == list(range(ids[0], ids[0] + len(ids)))  # only the oldest went
    assert path.stat().st_size < 2 * max_bytes  # freed pages are reused: the file stops growing


def test_bodies_over_the_cap_are_cut_with_their_full_size_and_hash(tmp_path):
    path = tmp_path / "c.sqlite3"
    body = b"0123456789abcdef" * 1000  # 16,000 bytes
    record = exchange("POST", "/big", 200, req_body=body, resp_body=b"small")
    fill(path, [("api", record)], body_cap=1000)
    with open_store(CaptureSettings(path=path)) as store:
        e = store.get(1)
    assert e is not None
    assert e.request_body.truncated and len(e.request_body.data) == 1000
    assert e.request_body.data == body[:1000]
    assert e.request_body.size == len(body)
    assert e.request_body.sha256 == hashlib.sha256(body).hexdigest()
    assert not e.response_body.truncated and e.response_body.data == b"small"


def test_a_body_the_agent_cut_is_marked_with_its_size_and_no_hash(tmp_path):
    path = tmp_path / "c.sqlite3"
    body = b"z" * 5000
    fill(path, [("api", exchange("PUT", "/f", 204, req_body=body, capture_bytes=100))])
    with open_store(CaptureSettings(path=path)) as store:
        e = store.get(1)
    assert e is not None
    assert e.request_body.truncated and e.request_body.data == b"z" * 100
    assert e.request_body.size == 5000 and e.request_body.sha256 is None


def test_the_store_survives_restarts(tmp_path):
    path = tmp_path / "deep" / "dir" / "c.sqlite3"
    fill(path, [("api", exchange("GET", "/first"))])
    fill(path, [("web", exchange("GET", "/second"))])
    with open_store(CaptureSettings(path=path)) as store:
        assert [(e.id, e.tunnel, e.path) for e in store.select(newest_first=False)] == [
            (1, "api", "/first"),
            (2, "web", "/second"),
        ]


def test_the_file_comes_from_the_environment_variable(tmp_path, monkeypatch):
    path = tmp_path / "env.sqlite3"
    monkeypatch.setenv("MOLEHILL_CAPTURE_FILE", str(path))
    assert CaptureSettings().file == path
    assert CaptureSettings(path=tmp_path / "arg.sqlite3").file == tmp_path / "arg.sqlite3"
    monkeypatch.delenv("MOLEHILL_CAPTURE_FILE")
    assert CaptureSettings().file.name == "captures.sqlite3"
    assert "molehill" in str(CaptureSettings().file)


def test_captures_off_gives_no_writer(tmp_path):
    assert open_writer(CaptureSettings(enabled=False, path=tmp_path / "c.sqlite3")) is None
    assert not (tmp_path / "c.sqlite3").exists()


def test_a_store_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "c.sqlite3"
    fill(path, [("api", exchange())])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreTooNew) as info:
        open_writer(CaptureSettings(path=path))
    message = str(info.value)
    assert str(path) in message and "newer molehill" in message and "version 99" in message
    with pytest.raises(StoreTooNew):
        open_store(CaptureSettings(path=path))


@pytest.mark.parametrize(
    "content", [b"this is not a database at all\n" * 200, b"SQLite format 3\x00" + b"\xff" * 5000]
)
def test_a_corrupt_file_is_reported_with_its_path(tmp_path, content):
    path = tmp_path / "c.sqlite3"
    path.write_bytes(content)
    with pytest.raises(StoreCorrupt) as info:
        open_writer(CaptureSettings(path=path))
    assert str(path) in str(info.value) and "move" in str(info.value)
    assert path.read_bytes() == content  # nothing is lost: the file is left as it was


def test_a_sqlite_file_of_another_program_is_not_taken_over(tmp_path):
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE accounts (id INTEGER, name TEXT)")
    with pytest.raises(StoreCorrupt, match="not a molehill capture store"):
        open_writer(CaptureSettings(path=path))


def test_a_locked_file_is_reported_and_the_caller_goes_on(tmp_path):
    path = tmp_path / "c.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("CREATE TABLE hold (x)")  # takes and keeps the exclusive lock
    try:
        started = time.monotonic()
        with pytest.raises(StoreLocked) as info:
            open_writer(CaptureSettings(path=path, busy_timeout=0.2))
        assert str(path) in str(info.value)
        assert time.monotonic() - started < 5
    finally:
        holder.close()


def test_a_store_that_fails_while_running_stops_the_writer_not_the_caller(tmp_path):
    path = tmp_path / "c.sqlite3"
    errors: list[StoreError] = []
    writer = open_writer(CaptureSettings(path=path, busy_timeout=0.2), on_error=errors.append)
    assert writer is not None
    writer.submit("api", exchange("GET", "/before"))
    assert writer.flush()
    holder = sqlite3.connect(path, isolation_level=None, timeout=5)
    holder.execute("BEGIN EXCLUSIVE")  # in WAL mode: blocks every other writer
    try:
        for _ in range(5):
            writer.submit("api", exchange("GET", "/during"))  # never raises, never blocks
        assert writer.flush()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert isinstance(writer.error, StoreLocked) and errors == [writer.error]
    writer.submit("api", exchange("GET", "/after"))
    assert writer.written == 1 and writer.dropped == 6
    writer.close()


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path):
    path = tmp_path / "c.sqlite3"
    writer = _writer(path, queue_size=5, batch_size=1, busy_timeout=10)
    holder = sqlite3.connect(path, isolation_level=None, timeout=5)
    holder.execute("BEGIN EXCLUSIVE")  # the writer's first batch waits for this lock
    record = exchange("GET", "/burst")
    try:
        started = time.monotonic()
        for _ in range(50):
            writer.submit("api", record)
        assert time.monotonic() - started < 0.5  # submit never waited for the disk
        time.sleep(0.1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert writer.flush()
    assert writer.error is None
    assert writer.written + writer.dropped == 50
    assert writer.dropped >= 40 and writer.written >= 5
    writer.close()


def test_readers_in_another_process_see_the_writes_as_they_happen(tmp_path):
    path = tmp_path / "c.sqlite3"
    writer = _writer(path, batch_size=10)
    writer.submit("api", exchange("GET", "/seed"))
    assert writer.flush()
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from inspector import CaptureStore, parse\n"
            "seen = []\n"
            "with CaptureStore(Path(sys.argv[1]), create=False) as store:\n"
            # 1.5 s of reading, longer (20 s at most) until a write shows: the store process
            # runs on idle CPU only, and a saturated machine (a test run beside) starves it.
            "    start = time.monotonic()\n"
            "    while time.monotonic() < start + 1.5 or (\n"
            "        seen[-1] == seen[0] and time.monotonic() < start + 20\n"
            "    ):\n"
            "        seen.append(store.count(parse('path:/live/*')))\n"
            "        store.select(parse('status:2xx'), limit=20)\n"
            "print(seen[0], seen[-1], all(a <= b for a, b in zip(seen, seen[1:])))\n",
            str(path),
        ],
        cwd=ROOT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        end = time.monotonic() + 1.0
        i = 0
        while time.monotonic() < end:
            writer.submit("api", exchange("POST", f"/live/{i}", 200, req_body=b"x" * 2000))
            i += 1
            if i % 20 == 0:
                time.sleep(0.01)
        out, err = reader.communicate(timeout=30)
    finally:
        if reader.poll() is None:
            reader.kill()
    assert reader.returncode == 0, err
    first, last, monotonic = out.split()
    assert monotonic == "True" and int(last) > int(first)
    assert writer.flush()
    writer.close()


def test_reading_a_store_that_does_not_exist_creates_nothing(tmp_path):
    path = tmp_path / "none.sqlite3"
    with pytest.raises(StoreMissing):
        open_store(CaptureSettings(path=path))
    assert not path.exists()


def test_clear_deletes_all_or_one_tunnel(tmp_path):
    path = tmp_path / "c.sqlite3"
    fill(path, [("api", exchange()), ("web", exchange()), ("api", exchange())])
    with open_store(CaptureSettings(path=path)) as store:
        assert store.clear("api") == 2
        assert [e.tunnel for e in store.select()] == ["web"]
        assert store.clear() == 1
        assert store.count() == 0


def test_the_writer_indexes_bodies_when_idle_and_searches_agree_before_and_after(tmp_path):
    path = tmp_path / "c.sqlite3"
    writer = _writer(path)
    for i in range(300):
        body = b'{"event": "%s"}' % (b"payment_failed" if i % 3 == 0 else b"ok")
        writer.submit("api", exchange("POST", f"/hook/{i}", 200, req_body=body))
    assert writer.flush()
    with open_store(CaptureSettings(path=path)) as store:
        assert store.count(parse('body:"payment_failed"')) == 100  # indexed or scanned
    assert writer.wait_indexed()
    with open_store(CaptureSettings(path=path)) as store:
        upto = store.db.execute("SELECT value FROM meta WHERE key='indexed_upto'").fetchone()
        assert int(upto[0]) == 300
        assert store.count(parse('body:"payment_failed"')) == 100
        assert store.count(parse("-body:payment_failed")) == 200
    writer.close()


def test_a_slow_store_never_holds_more_than_queue_bytes_of_bodies(tmp_path):
    """Bodies of up to body_cap each wait for the writer: the wait is bounded in bytes, not only
    in count (10,000 exchanges of 1 MiB each would be 20 GiB). Over the bound, drops are counted.
    What is in flight counts until the writer process has stored it."""
    path = tmp_path / "c.sqlite3"
    settings = CaptureSettings(path=path, queue_bytes=4 * 1024 * 1024, busy_timeout=30)
    writer = open_writer(settings)
    assert isinstance(writer, CaptureWriter)
    holder = sqlite3.connect(path, isolation_level=None, timeout=5)
    holder.execute("BEGIN EXCLUSIVE")  # a disk that stalls: the writer process waits for it
    body = bytes(1024 * 1024)
    records = [
        exchange("POST", f"/upload/{i}", req_body=body, capture_bytes=len(body)) for i in range(12)
    ]
    try:
        for record in records:
            writer.submit("t", record)
        assert writer.queued_bytes <= settings.queue_bytes
        assert writer.dropped == 12 - 3  # 4 MiB holds three 1 MiB bodies and their heads
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert writer.flush()
    assert writer.queued_bytes == 0
    stored = writer.written
    writer.close()
    assert stored == 3 and writer.dropped == 9
