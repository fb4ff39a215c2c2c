"""Names across runs and front ends, as real processes: a deliberate stop (SIGINT, SIGTERM) frees
the name at once; a killed dashboard's name is held, and the CLI gets it back with the resume
token the dashboard kept in the shared store."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import textwrap

import pytest

from tests.relay.helpers import get, refusal
from tests.support.cli import ROOT, Process, molehill_env, molehill_process
from tests.support.stack import running_relay
from tests.support.waiting import eventually


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_stopping_molehill_http_frees_its_name_at_once(tmp_path, app_port, sig):
    env = {"MOLEHILL_RESUME_FILE": str(tmp_path / "resume.json")}
    async with running_relay(lease=60.0) as relay:
        args = ("http", str(app_port), "--relay", relay.agents_url, "--subdomain", "web", "--json")
        async with molehill_process(*args, env=env) as first:
            assert json.loads(await first.line())["event"] == "tunnel_open"
            first.signal(sig)
            assert await first.wait() == 0
        assert "web" not in relay.leases and "web" not in relay.tunnels
        page = await get(relay.http_port, f"web.localhost:{relay.http_port}")
        assert page.status == 404  # "no tunnel", not "held while it reconnects"
        # Anyone gets the name now, even without the first run's resume token.
        other = {"MOLEHILL_RESUME_FILE": str(tmp_path / "other.json")}
        async with molehill_process(*args, env=other) as second:
            event = json.loads(await second.line())
            assert event["event"] == "tunnel_open" and event["name"] == "web"
            assert await second.terminate() == 0


# The dashboard's runtime (relay/host.py) in a process of its own, to be killed like a crashed
# dashboard: it prints "online" once its tunnel is up.
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


async def test_a_killed_dashboards_name_comes_back_to_the_cli(tmp_path, app_port):
    env = molehill_env({"MOLEHILL_RESUME_FILE": str(tmp_path / "resume.json")})
    async with running_relay(lease=60.0) as relay:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            DASHBOARD,
            relay.agents_url,
            str(app_port),
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        dashboard = Process(proc)
        try:
            assert await dashboard.line(timeout=15) == "online"
        finally:
            proc.kill()
            await proc.wait()
        await eventually(lambda: "web" in relay.leases, what="the lease of the killed dashboard")
        assert (await refusal(relay, app_port, "web")).code == "name_held"
        args = ("http", str(app_port), "--relay", relay.agents_url, "--subdomain", "web", "--json")
        async with molehill_process(*args, env=env) as cli:
            event = json.loads(await cli.line())
            assert event["event"] == "tunnel_open" and event["name"] == "web"
            assert (await get(relay.http_port, f"web.localhost:{relay.http_port}")).status == 200
            assert await cli.terminate() == 0
        assert "web" not in relay.leases  # and its stop freed the name again
