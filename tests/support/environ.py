"""The environment the tests give molehill processes: the user's MOLEHILL_* settings removed,
and the resume-token file and the capture store pointed into a temporary directory (never the
user's own)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Set once for the whole run, before any test starts an agent in this process.
FOLDER = Path(tempfile.mkdtemp(prefix="molehill-tests-"))
RESUME_FILE = FOLDER / "resume.json"
CAPTURE_FILE = FOLDER / "captures.sqlite3"
os.environ["MOLEHILL_RESUME_FILE"] = str(RESUME_FILE)
os.environ["MOLEHILL_CAPTURE_FILE"] = str(CAPTURE_FILE)


def clean_environ() -> dict[str, str]:
    """A copy of os.environ for a molehill subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLEHILL_")}
    env["MOLEHILL_RESUME_FILE"] = str(RESUME_FILE)
    env["MOLEHILL_CAPTURE_FILE"] = str(CAPTURE_FILE)
    return env
