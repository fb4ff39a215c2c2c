"""The relay, the agent and the local app as real processes (`python -m tui.cli relay|http`), so
a test can kill them (SIGKILL included), restart them on the same ports and read each one's
memory (VmRSS) on its own.

Every process is started by an async context manager that kills it on the way out. Output is
drained by a background task (an agent logs one line per request: an undrained pipe would stall
it); lines that are not per-request records are kept for the tests to wait on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.support.environ import clean_environ

ROOT = Path(__file__).resolve().parents[2]


def rss_kib(pid: int) -> int:
    """Resident memory of process ``pid`` in KiB (VmRSS from /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Process:
    """A running child process with its stdout read line by line in the background."""

    def __init__(self, proc: asyncio.subprocess.Process, what: str, stderr_path: Path) -> None:
        self.proc = proc
        self.what = what
        self.stderr_path = stderr_path
        self.lines: list[str] = []  # every line except per-request JSON records
        self.events: list[dict[str, Any]] = []  # the JSON objects among them
        self.requests = 0  # per-request JSON records seen
        self._reader = asyncio.create_task(self._read())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int:
        return rss_kib(self.proc.pid)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while raw := await self.proc.stdout.readline():
            text = raw.decode(errors="replace").rstrip("\n")
            if text.startswith("{"):
                try:
                    event = json.loads(text)
                except ValueError:
                    event = None
                if isinstance(event, dict):
                    if event.get("event") == "request":
                        self.requests += 1
                        continue
                    self.events.append(event)
            self.lines.append(text)

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    async def wait_for(
        self, check: Callable[[], Any], timeout: float = 10.0, what: str = "output"
    ) -> Any:
        """Poll ``check`` until it returns something truthy; fail with the process's output."""
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.what}: timed out waiting for {what}\nstdout: {self.lines[-20:]}\n"
                    f"stderr: {self.stderr()[-2000:]}"
                )
            if self.proc.returncode is not None and self._reader.done():
                found = check()
                if found:
                    return found
                raise AssertionError(
                    f"{self.what} exited ({self.proc.returncode}) while waiting for {what}\n"
                    f"stdout: {self.lines[-20:]}\nstderr: {self.stderr()[-2000:]}"
                )
            await asyncio.sleep(0.01)

    async def line_matching(self, pattern: str, timeout: float = 10.0, start: int = 0):
        regex = re.compile(pattern)

        def check() -> re.Match[str] | None:
            for line in self.lines[start:]:
                found = regex.search(line)
                if found:
                    return found
            return None

        return await self.wait_for(check, timeout, f"a line matching {pattern!r}")

    async def event(self, kind: str, timeout: float = 10.0, start: int = 0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            return next((e for e in self.events[start:] if e.get("event") == kind), None)

        return await self.wait_for(check, timeout, f"a {kind!r} event")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    async def wait(self, timeout: float = 10.0) -> int:
        async with asyncio.timeout(timeout):
            return await self.proc.wait()

    async def close(self) -> None:
        """Kill (if still running) and reap the process; stop the output reader."""
        self.kill()
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await self.wait(10)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._reader, 5)
        if not self._reader.done():
            self._reader.cancel()


@asynccontextmanager
async def python_process(
    what: str,
    log_dir: Path,
    *args: str,
    cls: type[Process] = Process,
    env: dict[str, str] | None = None,
) -> AsyncIterator[Any]:
    """``python ARGS...`` from the repository root; killed (SIGKILL) and reaped on exit."""
    environ = clean_environ()
    environ["PYTHONUNBUFFERED"] = "1"
    environ.update(env or {})
    log_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = log_dir / f"{what}-{time.monotonic_ns()}.stderr"
    with open(stderr_path, "wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=ROOT,
            env=environ,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    process = cls(proc, what, stderr_path)
    try:
        yield process
    finally:
        await process.close()


class RelayProcess(Process):
    http_port: int = 0
    agents_url: str = ""

    @property
    def agents_port(self) -> int:
        return int(self.agents_url.rsplit(":", 1)[1])

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def host(self, name: str) -> str:
        """The Host header that selects tunnel ``name`` on this relay."""
        return f"{name}.localhost:{self.http_port}"


@asynccontextmanager
async def relay_process(
    log_dir: Path,
    http_port: int = 0,
    agents_port: int = 0,
    *,
    lease: float = 30.0,
    ping_interval: float = 5.0,
    ping_timeout: float = 15.0,
) -> AsyncIterator[RelayProcess]:
    """`molehill relay` on 127.0.0.1 (ports 0: chosen by the OS); waits until it listens."""
    args = [
        "-m",
        "tui.cli",
        "relay",
        "--http",
        f"127.0.0.1:{http_port}",
        "--agents",
        f"127.0.0.1:{agents_port}",
        "--lease",
        str(lease),
        "--ping-interval",
        str(ping_interval),
        "--ping-timeout",
        str(ping_timeout),
    ]
    relay: RelayProcess
    async with python_process("relay", log_dir, *args, cls=RelayProcess) as relay:
        found = await relay.line_matching(r"public HTTP\s+http://127\.0\.0\.1:(\d+)")
        relay.http_port = int(found.group(1))
        relay.agents_url = (await relay.line_matching(r"agents\s+(ws://127\.0\.0\.1:\d+)")).group(1)
        yield relay


class AgentProcess(Process):
    name: str = ""
    url: str = ""


@asynccontextmanager
async def agent_process(
    log_dir: Path,
    relay_url: str,
    local_port: int,
    name: str = "",
    *,
    wait: bool = True,
    resume_file: Path | None = None,
    extra: tuple[str, ...] = (),
) -> AsyncIterator[AgentProcess]:
    """`molehill http PORT --json`; waits for its tunnel_open event unless ``wait`` is False.

    The agent keeps resume tokens in ``resume_file`` (default: LOG_DIR/resume.json, shared by
    the agents of one test, as by the runs of one user), never in the real user's state dir."""
    args = ["-m", "tui.cli", "http", str(local_port), "--relay", relay_url, "--json"]
    if name:
        args += ["--subdomain", name]
    args += extra
    env = {"MOLEHILL_RESUME_FILE": str(resume_file or log_dir / "resume.json")}
    agent: AgentProcess
    async with python_process(
        f"agent-{name or 'random'}", log_dir, *args, cls=AgentProcess, env=env
    ) as agent:
        if wait:
            opened = await agent.event("tunnel_open")
            agent.name, agent.url = opened["name"], opened["url"]
        yield agent


@asynccontextmanager
async def app_process(log_dir: Path, port: int = 0) -> AsyncIterator[tuple[Process, int]]:
    """The aiohttp test app (tests/support/apps.py) in its own process; yields it and its port."""
    async with python_process(
        "app", log_dir, "-m", "tests.reliability.serve_app", str(port)
    ) as process:
        found = await process.line_matching(r"listening on 127\.0\.0\.1:(\d+)")
        yield process, int(found.group(1))
