"""A dashboard's tunnel runtime (relay/host.py) in a process of its own, killed like a crash."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

from tests.support.cli import ROOT, Process, molehill_env

# Prints "online" once its tunnel "web" is up, then waits to be killed.
DASHBOARD = textwrap.dedent(
    """
    import sys, time
    from relay.agent import AgentSettings
    from relay.host import TunnelHost
    host = TunnelHost(sys.argv[1])
    host.start()
    host.start_tunnel("web", AgentSettings(local_port=int(sys.argv[2]), name="web", relay=""))
    def state():
        status = host.drain().statuses.get("web")
        return status.state if status else ""
    while state() != "online":
        time.sleep(0.05)
    print("online", flush=True)
    time.sleep(60)
    """
)


async def run_and_kill_dashboard(agents_url: str, app_port: int, resume_file: Path) -> None:
    """Bring the tunnel "web" up from a dashboard runtime that keeps its resume token in
    ``resume_file``, then kill -9 it: the relay sees a lost connection, no GOAWAY."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        DASHBOARD,
        agents_url,
        str(app_port),
        cwd=ROOT,
        env=molehill_env({"MOLEHILL_RESUME_FILE": str(resume_file)}),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert await Process(proc).line(timeout=15) == "online"
    finally:
        proc.kill()
        await proc.wait()
