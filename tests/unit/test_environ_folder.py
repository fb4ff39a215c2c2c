"""A test run removes the temporary folder tests/support/environ.py gives it, even while a
process it started still writes there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.support import environ

ROOT = Path(__file__).resolve().parents[2]

# Written into the folder by a process the tiny session starts and leaves running: it goes on
# writing for a second after the session, then leaves a mark beside (not in) the folder.
WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    folder, done = Path(sys.argv[1]), Path(sys.argv[2])
    end = time.monotonic() + 1.0
    n = 0
    while time.monotonic() < end:
        try:
            (folder / f"late-{n}").write_bytes(b"x")
        except OSError:
            pass  # the folder is gone: what the run's end should do
        n += 1
        time.sleep(0.005)
    done.write_text(str(n))
    """
)

TINY_TEST = textwrap.dedent(
    """
    import subprocess, sys
    from pathlib import Path
    from tests.support.environ import CAPTURE_FILE, FOLDER, RESUME_FILE

    HERE = Path(__file__).parent

    def test_writes_into_the_folder():
        assert FOLDER.is_dir() and FOLDER.name.startswith("molehill-tests-")
        RESUME_FILE.write_text("{}")
        CAPTURE_FILE.write_bytes(b"not really sqlite")
        (HERE / "folder.txt").write_text(str(FOLDER))
        writer = [sys.executable, str(HERE / "writer.py"), str(FOLDER), str(HERE / "done")]
        subprocess.Popen(writer)  # left running on purpose, like a process that outlives a test
    """
)


def test_a_pytest_session_removes_its_folder_even_while_a_process_writes_there(tmp_path):
    (tmp_path / "test_tiny.py").write_text(TINY_TEST)
    (tmp_path / "writer.py").write_text(WRITER)
    # The tiny session needs none of the installed pytest plugins (loading them takes seconds).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    run = subprocess.run(
        [*pytest, "-p", "tests.conftest", str(tmp_path / "test_tiny.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
    folder = Path((tmp_path / "folder.txt").read_text())
    assert folder != environ.FOLDER  # the tiny session had a folder of its own
    left_at_exit = folder.exists()
    # The writer ends on its own within about a second; the folder must not come back meanwhile.
    deadline = time.monotonic() + 10
    while not (tmp_path / "done").exists():
        assert time.monotonic() < deadline, "the writer never finished"
        time.sleep(0.05)
    left_after_writer = folder.exists()
    shutil.rmtree(folder, ignore_errors=True)  # if this test fails, it leaves nothing either
    assert not left_at_exit, f"{folder} was still there when the session's process ended"
    assert not left_after_writer, f"{folder} came back while a process wrote there"
    assert int((tmp_path / "done").read_text()) > 0
