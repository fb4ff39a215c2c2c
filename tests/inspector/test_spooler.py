"""The spooler in front of the idle-priority store process: the agent never waits for the store."""

from __future__ import annotations

import fcntl
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from inspector import CaptureSettings, CaptureWriter, open_writer
from inspector.spooler import pump
from tests.inspector.records import ROOT_DIR, exchange

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SCHED_IDLE and /proc: Linux")


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry))
    return found


def _store_pid(writer: CaptureWriter) -> int:
    (pid,) = _children(writer.pid)
    return pid


def _unread(fd: int) -> int:
    """Bytes waiting in the pipe ``fd`` is an end of."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def test_the_store_runs_at_idle_priority_and_the_spooler_does_not(tmp_path):
    writer = open_writer(CaptureSettings(path=tmp_path / "c.sqlite3"))
    assert isinstance(writer, CaptureWriter)
    try:
        store = _store_pid(writer)
        assert os.sched_getscheduler(store) == os.SCHED_IDLE
        assert os.sched_getscheduler(writer.pid) == os.SCHED_OTHER
        writer.submit("api", exchange("GET", "/idle"))
        assert writer.flush()
    finally:
        writer.close()
    assert writer.written == 1


def test_the_store_leaves_the_front_ends_session_for_a_lowest_weight_group(tmp_path):
    """With autogroups the kernel shares a core between sessions first: in the agent's session
    the store took the agent's share whenever the agent waited. In a session of its own, at the
    lowest group weight, it gets only what no session wants."""
    writer = open_writer(CaptureSettings(path=tmp_path / "c.sqlite3"))
    assert isinstance(writer, CaptureWriter)
    try:
        store = _store_pid(writer)
        assert os.getsid(store) == store
        assert os.getsid(writer.pid) == os.getsid(0)  # the spooler stays with its front end
        group = Path(f"/proc/{store}/autogroup")
        if group.exists():  # kernels built with CONFIG_SCHED_AUTOGROUP
            assert group.read_text().split()[-1] == "19", group.read_text()
            assert group.read_text() != Path("/proc/self/autogroup").read_text()
        writer.submit("api", exchange("GET", "/own-group"))
        assert writer.flush()
    finally:
        writer.close()
    assert writer.written == 1


def test_a_users_inspector_module_in_the_working_directory_is_never_imported(tmp_path, monkeypatch):
    """`molehill http` runs in the user's project: its own inspector.py (or a package of that
    name) must not replace the store's code (`python -m` would import it from there first)."""
    project = tmp_path / "project"
    (project / "inspector").mkdir(parents=True)
    marker = tmp_path / "imported"
    (project / "inspector" / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nraise SystemExit(3)\n"
    )
    monkeypatch.chdir(project)
    writer = open_writer(CaptureSettings(path=tmp_path / "c.sqlite3"))
    assert isinstance(writer, CaptureWriter), writer
    try:
        writer.submit("api", exchange("GET", "/from-a-project"))
        assert writer.flush()
    finally:
        writer.close()
    assert writer.written == 1
    assert not marker.exists()


def test_a_store_that_gets_no_cpu_never_blocks_the_sender_nor_loses_anything(tmp_path):
    """The store process stopped (as if starved by a saturated core): everything submitted
    crosses the pipe into the spooler's memory, far beyond the pipes' buffers, and is stored
    once the store runs again."""
    path = tmp_path / "c.sqlite3"
    writer = open_writer(CaptureSettings(path=path))
    assert isinstance(writer, CaptureWriter)
    store = _store_pid(writer)
    count = 4000  # about 4.5 MB: four times the two pipes' buffers together
    os.kill(store, signal.SIGSTOP)
    try:
        for i in range(count):
            writer.submit("api", exchange("POST", f"/{i}", req_body=b"x" * 1024))
        agent_pipe = writer._process.stdin
        assert agent_pipe is not None
        deadline = time.monotonic() + 30
        settled = 0
        while settled < 5 and time.monotonic() < deadline:
            outbox = len(writer._outbox)
            settled = settled + 1 if outbox == 0 and _unread(agent_pipe.fileno()) == 0 else 0
            time.sleep(0.05)
        assert settled == 5, "the agent's pipe did not drain while the store was stopped"
        assert writer.dropped == 0 and writer.written == 0
    finally:
        os.kill(store, signal.SIGCONT)
    assert writer.flush(120)
    writer.close()
    assert (writer.written, writer.dropped) == (count, 0)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM exchanges").fetchone()[0] == count
        assert db.execute("SELECT path FROM exchanges ORDER BY id DESC LIMIT 1").fetchone() == (
            f"/{count - 1}",
        )


def test_the_spooler_holds_no_more_than_its_limit_and_keeps_the_order():
    """A sink nobody reads: the spooler stops reading at its limit (the source's writer then
    waits), and hands every byte over in order once the sink is read."""
    source_r, source_w = os.pipe()
    sink_r, sink_w = os.pipe()
    data = bytes(i % 251 for i in range(4 * 1024 * 1024))
    written = 0

    def produce() -> None:
        nonlocal written
        view = memoryview(data)
        while written < len(view):
            written += os.write(source_w, view[written : written + 65536])
        os.close(source_w)

    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        pumping = threading.Thread(target=pump, args=(source_r, sink_w, 256 * 1024, stand_in))
        producing = threading.Thread(target=produce)
        pumping.start()
        producing.start()
        time.sleep(1.0)
        # limit + one read (1 MiB) + what the two pipes' buffers hold (64 KiB each by default)
        assert written <= 256 * 1024 + 1024 * 1024 + 2 * 65536 + 65536
        got = bytearray()
        while True:
            chunk = os.read(sink_r, 1 << 20)
            got += chunk
            if len(got) >= len(data) or not chunk:
                break
        pumping.join(30)
        producing.join(30)
        assert not pumping.is_alive()
        assert bytes(got) == data
    finally:
        stand_in.kill()
        stand_in.wait()
        for fd in (source_r, sink_r, sink_w):
            os.close(fd)


def test_a_killed_store_process_is_reported_and_captures_stop_not_the_caller(tmp_path):
    writer = open_writer(CaptureSettings(path=tmp_path / "c.sqlite3"))
    assert isinstance(writer, CaptureWriter)
    writer.submit("api", exchange("GET", "/before"))
    assert writer.flush()
    os.kill(_store_pid(writer), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while writer.error is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert writer.error is not None and "ended unexpectedly" in str(writer.error)
    assert "store process was killed (SIGKILL)" in str(writer.error)
    assert writer._process.wait(10) == 128 + signal.SIGKILL  # as a shell says it
    writer.submit("api", exchange("GET", "/after"))  # never raises
    writer.close()
    assert writer.written == 1


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ([], "usage: python inspector/spooler.py"),
        (["{not json"], "unreadable settings"),
        (['{"queue_bytes": -1, "queue_size": 5}'], "must be whole numbers, at least 1"),
        (['{"queue_size": 5}'], "unreadable settings: 'queue_bytes'"),
    ],
)
def test_the_spooler_refuses_bad_arguments_with_a_reason(args, said):
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(ROOT_DIR / "inspector" / "spooler.py"), *args],
        cwd=ROOT_DIR,
        input=b"",
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert said in done.stderr.decode()


def test_quitting_does_not_wait_for_a_starved_store_and_loses_nothing(tmp_path, capsys):
    """A store that gets no CPU (stopped here; at SCHED_IDLE on a saturated machine it can be
    seconds behind) does not hold a quitting `molehill http` for long, and is not killed: it
    stores every exchange once it runs again, then ends."""
    from tui.captures import close_capture_writer

    path = tmp_path / "c.sqlite3"
    writer = open_writer(CaptureSettings(path=path))
    assert isinstance(writer, CaptureWriter)
    store = _store_pid(writer)
    spooler = writer.pid
    os.kill(store, signal.SIGSTOP)
    try:
        for i in range(200):
            writer.submit("api", exchange("GET", f"/late/{i}"))
        started = time.monotonic()
        close_capture_writer(writer, wait=0.5)
        assert time.monotonic() - started < 5
        err = capsys.readouterr().err
        assert "200 exchange(s) still being stored in the background" in err, err
        assert f"(process {spooler})" in err
        assert writer.left_running and writer.dropped == 0
    finally:
        os.kill(store, signal.SIGCONT)
    writer._process.wait(30)  # the spooler ends once the store has stored everything
    with sqlite3.connect(path) as db:
        (count,) = db.execute("SELECT count(*) FROM exchanges WHERE path LIKE '/late/%'").fetchone()
    assert count == 200


def test_closing_waits_for_a_store_that_keeps_up(tmp_path, capsys):
    from tui.captures import close_capture_writer

    writer = open_writer(CaptureSettings(path=tmp_path / "c.sqlite3"))
    assert isinstance(writer, CaptureWriter)
    for i in range(50):
        writer.submit("api", exchange("GET", f"/{i}"))
    close_capture_writer(writer)
    assert not writer.left_running and writer.written == 50
    assert "background" not in capsys.readouterr().err
