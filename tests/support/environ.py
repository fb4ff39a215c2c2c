"""The environment the tests give molehill processes: the user's MOLEHILL_* settings removed,
and the resume-token file pointed into a temporary directory (never the user's own)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Set once for the whole run, before any test starts an agent in this process.
RESUME_FILE = Path(tempfile.mkdtemp(prefix="molehill-tests-")) / "resume.json"
os.environ["MOLEHILL_RESUME_FILE"] = str(RESUME_FILE)


def clean_environ() -> dict[str, str]:
    """A copy of os.environ for a molehill subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLEHILL_")}
    env["MOLEHILL_RESUME_FILE"] = str(RESUME_FILE)
    return env
