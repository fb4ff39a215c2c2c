"""Moving capture batches into the spooler process: starting it, and writing whole batches to
its pipe with as few system calls as the pipe allows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from inspector.errors import StoreError
from inspector.settings import CaptureSettings, settings_json

IOV_GROUP = 512  # pieces per writev (the system's limit is 1024 or more)
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])
_SPOOLER = str(Path(__file__).resolve().with_name("spooler.py"))


def spawn_spooler(settings: CaptureSettings) -> subprocess.Popen[bytes]:
    """The spooler process (it starts the store process), with pipes on stdin, stdout, stderr."""
    env = dict(os.environ)
    # The child imports this very package, wherever it was imported from.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
    try:
        return subprocess.Popen(
            # By its file, isolated and without site-packages: it needs only the standard
            # library, and importing the inspector package cost it 0.3 s of CPU at start.
            [sys.executable, "-I", "-S", _SPOOLER, settings_json(settings)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # Not the front end's terminal (the dashboard draws there): kept for the error.
            stderr=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
    except OSError as exc:
        raise StoreError(settings.file, f"cannot start the writer process: {exc}") from exc


def write_all(fd: int, pieces: list[bytes]) -> bool:
    """Write every piece, in order, with as few writev calls as the pipe allows (no join: a
    captured body is not copied once more on its way)."""
    if not hasattr(os, "writev"):  # Windows
        return write_all_plain(fd, b"".join(pieces))
    try:
        for start in range(0, len(pieces), IOV_GROUP):
            # The pieces as they are (writev takes bytes; empty ones cost nothing): a memoryview
            # of each was a sixth of the sender's time. Only a piece cut by a partial write is
            # viewed, to send its rest.
            group: list[bytes | memoryview] = list(pieces[start : start + IOV_GROUP])
            written = os.writev(fd, group)
            # Most writes take the whole group (the spooler keeps the pipe drained): one sum
            # in C then, not a Python step per piece (four pieces an exchange).
            if written == sum(map(len, group)):
                continue
            first = 0
            while True:
                while first < len(group) and written >= len(group[first]):
                    written -= len(group[first])
                    first += 1
                if first == len(group):
                    break
                if written:
                    group[first] = memoryview(group[first])[written:]
                written = os.writev(fd, group[first:])
    except OSError:
        return False
    return True


def write_all_plain(fd: int, data: bytes) -> bool:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        return False
    return True
