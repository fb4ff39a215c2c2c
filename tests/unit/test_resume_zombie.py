"""A resume token held by a process killed but not yet reaped comes back to the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from relay.agent import resume_store


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_process_not_yet_reaped_holds_no_token(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert resume_store._alive(child.pid)
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        stat = Path(f"/proc/{child.pid}/stat")
        while stat.read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child never became a zombie"
            time.sleep(0.01)
        os.kill(child.pid, 0)  # a zombie still answers signal 0: what the old check relied on
        assert not resume_store._alive(child.pid)
        store = resume_store.ResumeStore(tmp_path / "resume.json")
        store.put("ws://relay", "web", "token-1")
        data = (tmp_path / "resume.json").read_text().replace(str(os.getpid()), str(child.pid))
        (tmp_path / "resume.json").write_text(data)
        assert store.get("ws://relay", "web") == "token-1"
    finally:
        child.wait()
