"""Names across runs and front ends, as real processes: a deliberate stop (SIGINT, SIGTERM) frees
the name at once; a killed dashboard's name is held, and the CLI gets it back with the resume
token the dashboard kept in the shared store."""

from __future__ import annotations

import json
import signal

import pytest

from tests.relay.helpers import get, refusal
from tests.support.cli import molehill_env, molehill_process
from tests.support.killed_dashboard import run_and_kill_dashboard
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


async def test_a_killed_dashboards_name_comes_back_to_the_cli(tmp_path, app_port):
    env = molehill_env({"MOLEHILL_RESUME_FILE": str(tmp_path / "resume.json")})
    async with running_relay(lease=60.0) as relay:
        await run_and_kill_dashboard(relay.agents_url, app_port, tmp_path / "resume.json")
        await eventually(lambda: "web" in relay.leases, what="the lease of the killed dashboard")
        assert (await refusal(relay, app_port, "web")).code == "name_held"
        args = ("http", str(app_port), "--relay", relay.agents_url, "--subdomain", "web", "--json")
        async with molehill_process(*args, env=env) as cli:
            event = json.loads(await cli.line())
            assert event["event"] == "tunnel_open" and event["name"] == "web"
            assert (await get(relay.http_port, f"web.localhost:{relay.http_port}")).status == 200
            assert await cli.terminate() == 0
        assert "web" not in relay.leases  # and its stop freed the name again
