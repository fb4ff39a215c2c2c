"""Where a profiles file's service keeps its socket, pid lock and log.

One service per profiles file: the files are named after a short hash of the file's absolute
path. The socket and the lock go in the user's runtime directory (``$XDG_RUNTIME_DIR/molehill``,
private to the user and cleared at logout), or the state directory when there is none; the log
goes in the state directory.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from profiles.paths import APP_NAME

SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, with the terminating NUL


@dataclass(frozen=True, slots=True)
class ServicePaths:
    profiles: Path
    socket: Path
    lock: Path  # holds the pid, the socket and the profiles file, while the service runs
    log: Path

    def problem(self) -> str:
        """Why the socket cannot be made where it would go, or ''."""
        if len(os.fsencode(self.socket)) > SOCKET_PATH_MAX:
            return (
                f"the service socket path {self.socket} is longer than {SOCKET_PATH_MAX} bytes; "
                "set XDG_RUNTIME_DIR to a shorter directory"
            )
        return ""


def runtime_dir() -> Path:
    """``$XDG_RUNTIME_DIR/molehill``, or the state directory without a runtime directory.

    Read from the variable itself: platformdirs' user_runtime_path checks the directory's mode
    and falls back to /tmp when the check fails, so two calls could name two places (and two
    services could each hold "the" lock). /tmp is shared with other users: never used here."""
    base = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(base):
        return Path(base) / APP_NAME
    return state_dir()


def state_dir() -> Path:
    return platformdirs.user_state_path(APP_NAME)


def service_paths(profiles: Path) -> ServicePaths:
    """The paths of the service for this profiles file (nothing is created)."""
    digest = hashlib.sha256(str(profiles.absolute()).encode()).hexdigest()[:12]
    run = runtime_dir()
    return ServicePaths(
        profiles=profiles.absolute(),
        socket=run / f"service-{digest}.sock",
        lock=run / f"service-{digest}.pid",
        log=state_dir() / f"service-{digest}.log",
    )


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) readable by the user only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
