"""The service's pid lock: one running service per profiles file, and where to find it.

The lock file is held with ``flock`` for the life of the process (the kernel drops it when the
process dies, even by kill -9, so a stale file never blocks a new start) and holds a JSON line
saying the pid, the socket, the log and the profiles file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass

from tui.service.paths import ServicePaths, make_private_dir


@dataclass(frozen=True, slots=True)
class Running:
    """A running service, as its lock file describes it."""

    pid: int
    socket: str
    log: str
    profiles: str
    started: float


class AlreadyRunning(Exception):
    def __init__(self, running: Running | None) -> None:
        super().__init__("a service is already running for this profiles file")
        self.running = running


class PidLock:
    """Taken by the service process at start; released when it exits."""

    def __init__(self, paths: ServicePaths) -> None:
        self.paths = paths
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write this process's details; raises AlreadyRunning."""
        make_private_dir(self.paths.lock.parent)
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(read_running(self.paths)) from None
        details = Running(
            os.getpid(),
            str(self.paths.socket),
            str(self.paths.log),
            str(self.paths.profiles),
            time.time(),
        )
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(asdict(details)) + "\n").encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing drops the flock
        self._fd = None


def read_running(paths: ServicePaths) -> Running | None:
    """The service holding the lock, or None if none does (a stale file counts as none)."""
    try:
        fd = os.open(paths.lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: a service runs
        else:
            return None  # nobody holds it (our shared lock goes with the close below)
        text = os.read(fd, 4096).decode(errors="replace")
    finally:
        os.close(fd)
    try:
        return Running(**json.loads(text))
    except (ValueError, TypeError):
        # Held, but the details are not written yet (a service in its first milliseconds).
        return Running(0, str(paths.socket), str(paths.log), str(paths.profiles), 0.0)


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, dead and not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
