"""A service under test: its own HOME and XDG directories in tmp_path, a real relay process,
local apps, `molehill service ...` as real processes and curl as the visitor."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.reliability.procs import RelayProcess, relay_process
from tests.support.apps import local_app
from tests.support.environ import FOLDER, clean_environ

ROOT = Path(__file__).resolve().parents[2]


def service_env(home: Path) -> dict[str, str]:
    """Every directory the service uses, under ``home`` (never the user's own); the runtime
    directory, which holds the control socket, in a short folder of its own instead: a socket's
    path must fit in 107 bytes, and pytest-xdist's tmp_path (.../popen-gw1/test_name0/) does not
    leave room for it."""
    # Named after ``home``: the test's own process and its service processes must agree on it.
    run = FOLDER / f"run-{hashlib.sha256(str(home).encode()).hexdigest()[:12]}"
    run.mkdir(exist_ok=True, mode=0o700)
    env = clean_environ()
    env.update(
        HOME=str(home),
        XDG_RUNTIME_DIR=str(run),
        XDG_STATE_HOME=str(home / "state"),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        MOLEHILL_CAPTURE_FILE=str(home / "captures.sqlite3"),
        MOLEHILL_RESUME_FILE=str(home / "resume.json"),
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Setup:
    """A relay, two local apps (web, api) and a profiles file that autostarts both."""

    home: Path
    env: dict[str, str]
    profiles: Path
    relay: RelayProcess
    ports: dict[str, int] = field(default_factory=dict)

    async def molehill(self, *args: str, timeout: float = 60.0) -> Result:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tui.cli",
            "--profiles",
            str(self.profiles),
            *args,
            cwd=ROOT,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())

    async def status(self) -> dict[str, Any]:
        result = await self.molehill("service", "status", "--json")
        return result.json()

    async def tunnels(self) -> dict[str, dict[str, Any]]:
        """By name; none while the service is starting (its lock taken, its socket not yet
        answering: `status --json` says so with "answering": false)."""
        return {t["name"]: t for t in (await self.status()).get("tunnels", [])}

    async def wait_online(self, *names: str, timeout: float = 20.0) -> dict[str, dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while True:
                tunnels = await self.tunnels()
                if all(tunnels.get(n, {}).get("state") == "online" for n in names):
                    return tunnels
                await asyncio.sleep(0.1)

    async def curl(self, name: str, path: str = "/") -> tuple[int, str]:
        """A visitor's request through the relay to tunnel ``name``: (status, body)."""
        proc = await asyncio.create_subprocess_exec(
            "curl",
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-H",
            f"Host: {self.relay.host(name)}",
            f"{self.relay.http_url}{path}",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        body, _, code = out.decode().rpartition("\n")
        return int(code), body

    def write_profiles(self, text: str) -> None:
        self.profiles.write_text(
            f'[relay]\nurl = "{self.relay.agents_url}"\n\n' + text.format(**self.ports)
        )


TWO_PROFILES = """
[profiles.web]
port = {web}
autostart = true

[profiles.api]
port = {api}
autostart = true
"""


@asynccontextmanager
async def service_setup(tmp_path: Path) -> AsyncIterator[Setup]:
    """The relay and the apps; the service is stopped (SIGTERM, then SIGKILL) on the way out."""
    async with AsyncExitStack() as stack:
        relay = await stack.enter_async_context(relay_process(tmp_path / "logs", lease=30.0))
        web = await stack.enter_async_context(local_app())
        api = await stack.enter_async_context(local_app())
        setup = Setup(tmp_path, service_env(tmp_path), tmp_path / "profiles.toml", relay)
        setup.ports = {"web": web, "api": api}
        setup.write_profiles(TWO_PROFILES)
        try:
            yield setup
        finally:
            await _make_sure_stopped(setup)


async def _make_sure_stopped(setup: Setup) -> None:
    import os
    import signal

    status = await setup.molehill("service", "status", "--json")
    if status.code == 0:
        pid = status.json()["pid"]
        result = await setup.molehill("service", "stop")
        if result.code != 0:
            os.kill(pid, signal.SIGKILL)
