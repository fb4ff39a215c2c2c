"""`molehill ...` as a real process: line-by-line stdout and stderr, exit codes, signals."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.environ import clean_environ

ROOT = Path(__file__).resolve().parents[2]


def molehill_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without MOLEHILL_* (a developer's own settings must not leak in)."""
    env = clean_environ()
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class Process:
    """A running `molehill ...` with line access to stdout and stderr."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.err_lines: list[str] = []

    async def _read(self, stream: asyncio.StreamReader | None, timeout: float) -> str:
        assert stream is not None
        async with asyncio.timeout(timeout):
            raw = await stream.readline()
        if not raw:
            raise EOFError("stream closed")
        return raw.decode().rstrip("\n")

    async def line(self, timeout: float = 10.0) -> str:
        text = await self._read(self.proc.stdout, timeout)
        self.lines.append(text)
        return text

    async def err_line(self, timeout: float = 10.0) -> str:
        text = await self._read(self.proc.stderr, timeout)
        self.err_lines.append(text)
        return text

    async def line_matching(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        async with asyncio.timeout(timeout):
            while True:
                found = re.search(pattern, await self.line())
                if found:
                    return found

    async def json_err_until(self, predicate, timeout: float = 10.0) -> dict:
        """Read stderr lines (each must be JSON) until one satisfies ``predicate``."""
        async with asyncio.timeout(timeout):
            while True:
                record = json.loads(await self.err_line())
                if predicate(record):
                    return record

    async def wait(self, timeout: float = 10.0) -> int:
        async with asyncio.timeout(timeout):
            return await self.proc.wait()

    async def rest_of_stderr(self, timeout: float = 5.0) -> str:
        assert self.proc.stderr is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                return (await self.proc.stderr.read()).decode()
        return ""

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    async def terminate(self, timeout: float = 10.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return await self.wait(timeout)


@contextlib.asynccontextmanager
async def molehill_process(
    *args: str, env: Mapping[str, str] | None = None, stdout: int = asyncio.subprocess.PIPE
) -> AsyncIterator[Process]:
    """Start `python -m tui.cli ARGS` from the repository root; killed on exit if still running.

    ``stdout`` may be a file descriptor (a pipe the test reads at its own pace, or not at all);
    ``Process.line`` then has nothing to read.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tui.cli",
        *args,
        cwd=ROOT,
        env=molehill_env(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield Process(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@dataclass
class Finished:
    """A `molehill ...` that ran to its end."""

    code: int
    out: str
    err: str


async def run_molehill(*args: str, timeout: float = 20.0, **kwargs) -> Finished:
    """Run `molehill ARGS` to completion (a short command such as `relay token add`)."""
    async with molehill_process(*args, **kwargs) as process:
        async with asyncio.timeout(timeout):
            out, err = await process.proc.communicate()
        return Finished(process.proc.returncode or 0, out.decode(), err.decode())


def require_program(name: str) -> str | None:
    """The program's path; under CI=true a missing one fails the test instead of skipping it."""
    import shutil

    import pytest

    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is missing: .ci/run installs it")
        pytest.skip(f"{name} is not installed")
    return path
