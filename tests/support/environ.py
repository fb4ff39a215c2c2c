"""The environment the tests give molehill processes: the user's MOLEHILL_* settings removed,
and the resume-token file and the capture store pointed into a temporary directory (never the
user's own), removed when the test process exits."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from pathlib import Path

# Set once for the whole run, before any test starts an agent in this process.
FOLDER = Path(tempfile.mkdtemp(prefix="molehill-tests-"))
RESUME_FILE = FOLDER / "resume.json"
CAPTURE_FILE = FOLDER / "captures.sqlite3"
os.environ["MOLEHILL_RESUME_FILE"] = str(RESUME_FILE)
os.environ["MOLEHILL_CAPTURE_FILE"] = str(CAPTURE_FILE)
_OWNER = os.getpid()  # a forked child that exits must not take the folder from its parent


def remove_folder(attempts: int = 3) -> None:
    """Remove FOLDER. A process the run left behind may still write into it, so a file created
    while the tree is being removed can keep it: try again, a little later."""
    if os.getpid() != _OWNER:
        return
    for attempt in range(attempts):
        shutil.rmtree(FOLDER, ignore_errors=True)
        if not FOLDER.exists():
            return
        time.sleep(0.05 * (attempt + 1))


# At exit rather than at the end of the session: after pytest's own teardown and the tunnel
# threads it waits for, so nothing in this process writes there any more.
atexit.register(remove_folder)


def clean_environ() -> dict[str, str]:
    """A copy of os.environ for a molehill subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLEHILL_")}
    env["MOLEHILL_RESUME_FILE"] = str(RESUME_FILE)
    env["MOLEHILL_CAPTURE_FILE"] = str(CAPTURE_FILE)
    return env
