"""A command's output: the last lines in memory and everything in a log file per profile."""

from __future__ import annotations

import collections
import os
import time
from pathlib import Path
from typing import TextIO

import platformdirs

RING_LINES = 1000  # lines of output kept in memory per profile
MAX_LOG_BYTES = 5 * 1024 * 1024  # a log file this big is moved to NAME.log.1 at the next start
MAX_LINE = 8192  # a longer "line" (no newline for that long) is cut here
LOGS_ENV = "MOLEHILL_APP_LOGS"


def logs_dir() -> Path:
    """Where the commands' log files go: $MOLEHILL_APP_LOGS, else the user's state dir."""
    chosen = os.environ.get(LOGS_ENV)
    if chosen:
        return Path(chosen).expanduser()
    return platformdirs.user_state_path("molehill") / "app-logs"


def log_path(profile: str) -> Path:
    """The log file of profile `profile`'s command (profile names are DNS labels: safe names)."""
    return logs_dir() / f"{profile}.log"


class OutputLog:
    """The ring of recent lines and the log file; each line is stored once, as it arrives."""

    def __init__(self, profile: str, ring_lines: int = RING_LINES) -> None:
        self.path = log_path(profile)
        self.lines: collections.deque[str] = collections.deque(maxlen=ring_lines)
        self._file: TextIO | None = None
        self.file_error = ""  # why the log file could not be written (the ring still works)

    def open(self, header: str) -> None:
        """Start a new run's section in the log file (moving an oversized file aside first)."""
        self.close()
        try:
            # Private: an app's output may hold secrets (tokens in URLs, stack traces).
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.path.exists() and self.path.stat().st_size > MAX_LOG_BYTES:
                self.path.replace(self.path.with_name(self.path.name + ".1"))
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._file = open(fd, "a", encoding="utf-8", errors="replace", buffering=1)  # noqa: SIM115 (kept open across lines; close() closes it)
            self.file_error = ""
        except OSError as exc:
            self.file_error = f"cannot write {self.path}: {exc.strerror or exc}"
        self.note(header)

    def note(self, text: str) -> None:
        """A line of molehill's own (started, exited), marked so it stands apart from output."""
        stamp = time.strftime("%H:%M:%S")
        self.add(f"--- {stamp} {text}")

    def add(self, line: str) -> None:
        line = line[:MAX_LINE]
        self.lines.append(line)
        if self._file is not None:
            try:
                self._file.write(line + "\n")
            except OSError as exc:
                self.file_error = f"cannot write {self.path}: {exc.strerror or exc}"
                self.close()

    def last(self, count: int) -> list[str]:
        return list(self.lines)[-count:]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
