"""The service process's entry point: logging to a rotating file, then the Service until it stops.

`molehill service start` runs this detached (a new session, stdin from /dev/null); `molehill
service run` runs it in the foreground (systemd's ExecStart), logging to stderr as well.
"""

from __future__ import annotations

import asyncio
import io
import logging
import logging.handlers
import sys

from inspector import CaptureSettings
from relay.transport.runtime import new_event_loop
from tui.local_api import ApiOptions
from tui.service.daemon import Service
from tui.service.paths import ServicePaths, make_private_dir
from tui.service.pidlock import AlreadyRunning

LOG_BYTES = 1024 * 1024  # per file; with 3 old files kept, at most 4 MiB of log
LOG_BACKUPS = 3


class _LogStream(io.TextIOBase):
    """stdout/stderr of the service (the local API's address, warnings) as log lines."""

    def __init__(self, logger: logging.Logger, level: int) -> None:
        self.logger = logger
        self.level = level
        self._partial = ""

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            if line.strip():
                self.logger.log(self.level, "%s", line)
        return len(text)

    def flush(self) -> None:
        pass


def set_up_logging(paths: ServicePaths, to_stderr: bool) -> None:
    make_private_dir(paths.log.parent)
    handler = logging.handlers.RotatingFileHandler(
        paths.log, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    if to_stderr:
        echo = logging.StreamHandler(sys.stderr)
        echo.setFormatter(logging.Formatter("molehill service: %(message)s"))
        root.addHandler(echo)
    else:
        out = logging.getLogger("molehill.output")
        sys.stdout = _LogStream(out, logging.INFO)
        sys.stderr = _LogStream(out, logging.WARNING)


def run_service(
    paths: ServicePaths,
    api: ApiOptions | None,
    captures: CaptureSettings | None,
    detached: bool,
) -> int:
    """Run until stopped; the exit code (3: another service holds the lock)."""
    set_up_logging(paths, to_stderr=not detached)
    service = Service(paths, api, captures)
    loop = new_event_loop()
    try:
        return loop.run_until_complete(service.run())
    except AlreadyRunning as exc:
        pid = exc.running.pid if exc.running else "?"
        logging.getLogger("molehill.service").error(
            "not started: service pid %s already runs for %s", pid, paths.profiles
        )
        return 3
    finally:
        loop.close()
        asyncio.set_event_loop(None)
