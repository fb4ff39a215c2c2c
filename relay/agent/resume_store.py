"""Remembers each tunnel's resume token on disk, so a restarted agent gets its name back.

The relay holds a disconnected tunnel's name for a lease, for whoever presents the resume token
it issued. A reconnecting agent has the token in memory; a restarted one (a crash, Ctrl+C and up
again) reads it from here. Keyed by relay URL and public name; the file is private (0600).
Each entry records the process that holds the name, so a second agent started for the same
name while the first still runs does not take it over: it is refused, as it should be.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import platformdirs

MAX_ENTRIES = 200


def default_path() -> Path:
    return platformdirs.user_state_path("molehill") / "resume.json"


class ResumeStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or Path(os.environ.get("MOLEHILL_RESUME_FILE") or default_path())

    def _read(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict)}

    def get(self, relay: str, name: str) -> str:
        """The stored token, unless another running process holds that name."""
        entry = self._read().get(f"{relay}|{name}") if name else None
        if not entry or not isinstance(entry.get("resume"), str):
            return ""
        pid = entry.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and _alive(pid):
            return ""
        return str(entry["resume"])

    def put(self, relay: str, name: str, resume: str) -> None:
        """Best effort: a read-only home must not stop a tunnel."""
        data = self._read()
        key = f"{relay}|{name}"
        entry: dict[str, object] = {"resume": resume, "pid": os.getpid()}
        if data.get(key) == entry:
            return
        data.pop(key, None)
        data[key] = entry
        while len(data) > MAX_ENTRIES:
            data.pop(next(iter(data)))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".resume.")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A process killed (kill -9) but not yet reaped by its parent still answers signal 0: a
    # zombie holds no name, and its token must come back to the next run.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            state = stat.read().rpartition(")")[2].split()[:1]
    except OSError:
        return True  # no /proc here: signal 0 is all there is to go by
    return state not in (["Z"], ["X"])
