"""A tunnel's public access rules, enforced by the relay on every request: basic auth, allow and
deny networks, and X-Forwarded-For from trusted proxies only."""

from __future__ import annotations

import base64
import json
from ipaddress import ip_network

import pytest

from relay.wire import codec as p
from tests.relay.helpers import get, open_from, raw_agent
from tests.support.cli import molehill_process
from tests.support.stack import agent_for, raw_request, read_response, running_relay


def basic(credentials: str) -> tuple[str, str]:
    return ("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())


async def test_basic_auth_is_checked_on_every_request_of_a_connection(app_port):
    async with (
        running_relay() as relay,
        agent_for(relay, app_port, "private", basic_auth="ann:s3cret") as tunnel,
    ):
        reader, writer = await open_from(relay.http_port)
        writer.write(raw_request(tunnel.host, "/echo", headers=[basic("ann:s3cret")]))
        first = await read_response(reader)
        assert first.status == 200
        # The app never sees the credentials' absence: the second request is stopped at the relay.
        writer.write(raw_request(tunnel.host, "/echo"))
        second = await read_response(reader)
        assert second.status == 401
        assert (
            second.header("WWW-Authenticate") == 'Basic realm="molehill: private", charset="UTF-8"'
        )
        assert await reader.read() == b""  # and the connection is closed
        writer.close()

        wrong = await get(relay.http_port, tunnel.host, headers=[basic("ann:guess")])
        assert wrong.status == 401 and b"Sign-in required" in wrong.body
        assert (await get(relay.http_port, tunnel.host)).status == 401
        ok = await get(relay.http_port, tunnel.host, "/echo", headers=[basic("ann:s3cret")])
        assert ok.status == 200
        # the credentials are passed on: the app may want to know who signed in
        assert ["Authorization", basic("ann:s3cret")[1]] in json.loads(ok.body)["headers"]


@pytest.mark.parametrize(
    ("rules", "status"),
    [
        ({"allow": ("127.0.0.0/8",)}, 200),
        ({"deny": ("127.0.0.1/32",)}, 403),
        ({"allow": ("10.0.0.0/8",)}, 403),
        ({"allow": ("127.0.0.0/8",), "deny": ("127.0.0.1/32",)}, 403),  # deny wins
        ({"allow": ("::1/128", "127.0.0.1")}, 200),  # IPv6 and bare addresses mix
    ],
    ids=["allowed", "denied", "not-in-allow", "deny-wins", "mixed"],
)
async def test_allow_and_deny_networks(app_port, rules, status):
    async with running_relay() as relay, agent_for(relay, app_port, "ipr", **rules) as tunnel:
        response = await get(relay.http_port, tunnel.host)
        assert response.status == status
        if status == 403:
            assert b"does not accept visitors from 127.0.0.1" in response.body


async def test_visitors_are_told_apart_by_address(app_port):
    async with (
        running_relay() as relay,
        agent_for(relay, app_port, "ipr", deny=("127.0.0.2/32",)) as tunnel,
    ):
        assert (await get(relay.http_port, tunnel.host)).status == 200
        assert (await get(relay.http_port, tunnel.host, source="127.0.0.2")).status == 403
        assert (await get(relay.http_port, tunnel.host, source="127.0.0.3")).status == 200


async def test_http_command_access_flags(app_port):
    async with (
        running_relay() as relay,
        molehill_process(
            "http", str(app_port), "--relay", relay.agents_url, "--subdomain", "flags", "--json",
            "--basic-auth", "ann:pw", "--allow", "127.0.0.0/8", "--deny", "127.0.0.9/32",
        ) as agent,
    ):  # fmt: skip
        assert json.loads(await agent.line())["event"] == "tunnel_open"
        host = f"flags.localhost:{relay.http_port}"
        assert (await get(relay.http_port, host, headers=[basic("ann:pw")])).status == 200
        assert (await get(relay.http_port, host)).status == 401
        denied = await get(relay.http_port, host, headers=[basic("ann:pw")], source="127.0.0.9")
        assert denied.status == 403
        assert await agent.terminate() == 0


async def test_http_command_rejects_bad_access_flags(app_port):
    from tests.support.cli import run_molehill

    bad_auth = await run_molehill("http", str(app_port), "--basic-auth", "nopassword")
    assert bad_auth.code == 2 and "USER:PASSWORD" in bad_auth.err
    bad_net = await run_molehill("http", str(app_port), "--deny", "10.0.0.300/8")
    assert bad_net.code == 2 and "--deny" in bad_net.err


async def test_trusted_proxy_forwarded_for_is_used_and_extended(app_port):
    async with (
        running_relay(trusted_proxies=[ip_network("127.0.0.0/8")]) as relay,
        agent_for(relay, app_port, "open") as open_tunnel,
        agent_for(relay, app_port, "guarded", deny=("203.0.113.0/24",)) as guarded,
    ):
        forwarded = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")]
        seen = await get(relay.http_port, open_tunnel.host, "/echo", headers=forwarded)
        headers = dict((k.lower(), v) for k, v in json.loads(seen.body)["headers"])
        assert headers["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
        assert headers["x-forwarded-proto"] == "https"
        denied = await get(relay.http_port, guarded.host, headers=forwarded)
        assert denied.status == 403
        assert b"203.0.113.7" in denied.body
        other = [("X-Forwarded-For", "198.51.100.1")]
        assert (await get(relay.http_port, guarded.host, headers=other)).status == 200


async def test_untrusted_forwarded_for_is_replaced(app_port):
    async with (
        running_relay() as relay,
        agent_for(relay, app_port, "open") as open_tunnel,
        agent_for(relay, app_port, "guarded", deny=("127.0.0.1/32",)) as guarded,
    ):
        forged = [
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.example"),
        ]
        seen = await get(relay.http_port, open_tunnel.host, "/echo", headers=forged)
        headers = [(k.lower(), v) for k, v in json.loads(seen.body)["headers"]]
        forwarded = [(k, v) for k, v in headers if k.startswith("x-forwarded-")]
        assert sorted(forwarded) == [
            ("x-forwarded-for", "127.0.0.1"),
            ("x-forwarded-host", open_tunnel.host),
            ("x-forwarded-proto", "http"),
        ]
        # the forged address does not get a denied visitor in either
        assert (await get(relay.http_port, guarded.host, headers=forged)).status == 403


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"basic_auth": "nocolon"}, "basic_auth must be 'user:password'"),
        ({"allow": ["10.0.0.0/8", "not-a-net"]}, "allow: 'not-a-net' is not a CIDR network"),
        ({"deny": ["10.0.0.1"] * 257}, "deny must be a list of CIDR networks"),
        ({"colour": "red"}, "unknown tunnel options: colour"),
    ],
    ids=["auth", "network", "too-many", "unknown"],
)
async def test_bad_tunnel_options_are_refused(options, says):
    async with running_relay() as relay, raw_agent(relay, "opts", options=options) as (_ws, answer):
        assert isinstance(answer, p.Error)
        assert answer.code == "bad_options" and answer.message == says
        assert not relay.tunnels
