"""`molehill http` meeting a relay that is not there, not a relay, or the relay's public port:
a first connection gives up in bounded time with the reason; a tunnel that was online does not."""

from __future__ import annotations

import asyncio
import re
import socket
import time

import httpx

from tests.support.apps import raw_server
from tests.support.cli import molehill_process, run_molehill
from tests.support.stack import running_relay


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_first_connection_to_a_closed_port_exits_1_within_the_bound():
    port = closed_port()
    started = time.monotonic()
    done = await run_molehill(
        "http", "3000", "--relay", f"ws://127.0.0.1:{port}", "--connect-timeout", "2"
    )
    took = time.monotonic() - started
    assert done.code == 1, done
    assert took < 2 + 5, took  # the bound, plus an interpreter's start-up on a busy machine
    assert (
        f"nothing listens at ws://127.0.0.1:{port} — is the relay running? (molehill relay)"
        in done.err
    ), done.err
    assert "gave up after" in done.err and "--connect-timeout" in done.err
    # Plain lines while it tried: the relay, not an empty tunnel name.
    assert done.out.startswith(f"connecting to ws://127.0.0.1:{port}: "), done.out
    assert "tunnel ''" not in done.out + done.err
    assert "Traceback" not in done.err


async def test_an_unresolvable_relay_says_cannot_resolve():
    done = await run_molehill(
        "http", "3000", "--relay", "ws://no-such-relay.invalid:7000", "--connect-timeout", "2"
    )
    assert done.code == 1, done
    assert "cannot resolve no-such-relay.invalid" in done.err, done.err
    assert "Traceback" not in done.err


async def test_an_agent_at_the_public_port_is_told_the_agents_port_at_once():
    async with running_relay() as relay:
        started = time.monotonic()
        done = await run_molehill(
            "http", "3000", "--relay", f"ws://127.0.0.1:{relay.http_port}"
        )  # default bound (20 s): this mistake needs no retry to be sure of
        took = time.monotonic() - started
    assert done.code == 1, done
    assert took < 10, took
    assert f"agents connect to this relay at port {relay.agents_port}" in done.err.lower(), done.err
    assert f"--relay ws://127.0.0.1:{relay.agents_port}" in done.err
    assert "gave up after" not in done.err  # no retries: none would help
    assert "Traceback" not in done.err


async def test_the_public_port_still_answers_browsers_as_before():
    async with running_relay() as relay, httpx.AsyncClient() as c:
        resp = await c.get(relay.http_url + "/")
        assert resp.status_code == 404
        assert "No tunnel in this address" in resp.text
        # a websocket upgrade for a tunnel that does not exist is still "no tunnel named"
        resp = await c.get(
            relay.http_url + "/",
            headers={
                "Host": f"ghost.localhost:{relay.http_port}",
                "Upgrade": "websocket",
                "Connection": "Upgrade",
            },
        )
        assert resp.status_code == 404
        assert "No tunnel named 'ghost'" in resp.text


async def test_a_server_that_is_not_a_molehill_relay_is_named_as_such():
    async with raw_server() as other:
        done = await run_molehill("http", "3000", "--relay", f"ws://127.0.0.1:{other.port}")
    assert done.code == 1, done
    assert "answered HTTP 200, not a websocket" in done.err, done.err
    assert "not a molehill relay's agents' endpoint" in done.err


async def test_a_tunnel_that_was_online_keeps_reconnecting_past_the_bound(app_port):
    relay_cm = running_relay()
    relay = await relay_cm.__aenter__()
    try:
        async with molehill_process(
            "http", str(app_port), "--relay", relay.agents_url, "--connect-timeout", "1"
        ) as agent:
            first = await agent.line()
            name = re.search(r"tunnel '([a-z0-9-]+)' online", first)
            assert name, first  # the relay's random name, once known
            await relay_cm.__aexit__(None, None, None)
            relay_cm = None
            retries = [await agent.line(timeout=10) for _ in range(4)]
            assert all(f"tunnel '{name.group(1)}'" in line for line in retries), retries
            assert all("retrying in" in line for line in retries), retries
            await asyncio.sleep(1.5)  # well past --connect-timeout since the relay went
            assert agent.proc.returncode is None  # still trying, as it should
            assert await agent.terminate() == 0
    finally:
        if relay_cm is not None:
            await relay_cm.__aexit__(None, None, None)


async def test_start_gives_up_on_an_absent_relay_naming_the_profile(tmp_path):
    port = closed_port()
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(f'[relay]\nurl = "ws://127.0.0.1:{port}"\n\n[profiles.web]\nport = 3000\n')
    done = await run_molehill(
        "--profiles", str(profiles), "start", "--all", "--connect-timeout", "1"
    )
    assert done.code == 1, done
    assert f"molehill: [web] nothing listens at ws://127.0.0.1:{port}" in done.err, done.err
    assert "[web] tunnel 'web': nothing listens at" in done.out, done.out  # a name it asked for
