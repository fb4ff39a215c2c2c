"""One profile's command as an asyncio subprocess: its own process group, output, health, stop.

The command runs through the shell in a new session, so it and everything it starts share one
process group: stopping sends SIGTERM to the whole group, waits up to the grace period for the
group to be gone, then sends SIGKILL to whatever is left (a child that ignores SIGTERM too).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from runner.health import check
from runner.output import MAX_LINE, OutputLog
from runner.state import AppState, describe_exit

CHECK_EVERY = 0.5  # seconds between health checks
GROUP_POLL = 0.05  # seconds between "is any of the group left?" looks while stopping
LAST_LINES = 5  # output lines shown with an exit
READ_SIZE = 64 * 1024


class AppProcess:
    """Starts, watches and stops one command; reports each state change to ``on_change``."""

    def __init__(
        self,
        name: str,
        command: str,
        cwd: Path,
        *,
        host: str,
        port: int,
        health: str | None = None,
        tls: bool = False,
        stop_grace: float = 5.0,
        on_change: Callable[[str, AppState], None] | None = None,
        check_every: float = CHECK_EVERY,
    ) -> None:
        self.name = name
        self.command = command
        self.cwd = cwd
        self.host, self.port, self.health, self.tls = host, port, health, tls
        self.stop_grace = stop_grace
        self.on_change = on_change
        self.check_every = check_every
        self.state = AppState()
        self.output = OutputLog(name)
        self.env: dict[str, str] | None = None  # the extra environment of the current run
        self.pid: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def _happened(self, what: str, detail: str = "", code: int | None = None) -> None:
        new = self.state.after(what, time.time(), detail, code)
        if new is not self.state:
            self.state = new
            if self.on_change is not None:
                self.on_change(self.name, new)

    async def start(self, env: Mapping[str, str]) -> None:
        """Start the command with ``env`` on top of molehill's own environment."""
        await self.stop()
        self.env = dict(env)
        self.output.open(f"starting: {self.command}  (in {self.cwd})")
        if not self.cwd.is_dir():
            why = f"cwd {str(self.cwd)!r} is not a directory; fix cwd in [profiles.{self.name}]"
            self.output.note(why)
            self._happened("failed", why)
            return
        try:
            self._proc = await asyncio.create_subprocess_shell(
                self.command,
                cwd=self.cwd,
                env={**os.environ, **env},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own process group, apart from molehill's signals
            )
        except OSError as exc:
            why = f"cannot run the command: {exc.strerror or exc}"
            self.output.note(why)
            self._happened("failed", why)
            return
        self.pid = self._proc.pid
        self._stopping = False
        self._happened("started", f"pid {self.pid}")
        self._tasks = [
            asyncio.create_task(self._read(self._proc)),
            asyncio.create_task(self._watch(self._proc)),
            asyncio.create_task(self._check_health()),
        ]

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        """Split the output into lines; a line longer than MAX_LINE keeps its start only."""
        assert proc.stdout is not None
        partial = b""
        skipping = False  # inside an over-long line: drop bytes until its newline
        while True:
            chunk = await proc.stdout.read(READ_SIZE)
            if not chunk:
                if partial:
                    self._line(partial)
                return
            *lines, rest = (partial + chunk).split(b"\n")
            for line in lines:
                if not skipping:
                    self._line(line)
                skipping = False
            if skipping:
                rest = b""
            elif len(rest) > MAX_LINE:
                self._line(rest[:MAX_LINE])
                rest, skipping = b"", True
            partial = rest

    def _line(self, raw: bytes) -> None:
        self.output.add(raw.decode("utf-8", "replace").rstrip("\r"))

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1):  # the last lines it printed, before saying it exited
                await self._tasks[0]
        how = describe_exit(code)
        self.output.note(how)
        for task in self._tasks[2:]:
            task.cancel()
        self._happened("exited", how, code)

    async def _check_health(self) -> None:
        while True:
            problem = await check(self.host, self.port, self.health, self.tls)
            if problem is None:
                self._happened("answered", "")
            else:
                self._happened("silent", problem)
            await asyncio.sleep(self.check_every)

    def last_lines(self, count: int = LAST_LINES) -> list[str]:
        """The last lines the command printed (molehill's own notes left out)."""
        return [line for line in self.output.lines if not line.startswith("--- ")][-count:]

    async def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL to what is left after the grace period."""
        proc = self._proc
        if proc is None:
            self._happened("stopped")
            return
        self._stopping = True
        for task in self._tasks[2:]:
            task.cancel()
        pgid = proc.pid  # a session leader's group id is its pid
        if _signal_group(pgid, signal.SIGTERM):
            deadline = time.monotonic() + self.stop_grace
            while time.monotonic() < deadline and _group_alive(pgid, proc):
                await asyncio.sleep(GROUP_POLL)
            if _group_alive(pgid, proc) and _signal_group(pgid, signal.SIGKILL):
                self.output.note(f"still running {self.stop_grace:g}s after SIGTERM: killed")
        await proc.wait()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._proc = None
        self.output.note("stopped")
        self.output.close()
        self._happened("stopped")


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send `sig` to the group; False when no process of it is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def _group_alive(pgid: int, proc: asyncio.subprocess.Process) -> bool:
    """Whether a live (not zombie) process is left in the group."""
    if proc.returncode is None:
        return True
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    if not Path("/proc").is_dir():
        return True  # no way to tell zombies apart here: wait out the grace period
    # Orphans reparented to a PID 1 that reaps nothing stay as zombies: those are gone.
    return any(_live_member(pid, pgid) for pid in _pids())


def _pids() -> list[int]:
    with contextlib.suppress(OSError):
        return [int(p) for p in os.listdir("/proc") if p.isdigit()]
    return []


def _live_member(pid: int, pgid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0] != "Z" and int(fields[2]) == pgid
