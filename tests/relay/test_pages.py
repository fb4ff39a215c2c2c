"""Every error page a visitor can get from the relay, through a live relay, and every refusal an
agent can get: each is described in docs/self-hosting.md (troubleshooting)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from relay.server import Relay
from tests.relay.helpers import get, open_from
from tests.support.apps import raw_server
from tests.support.cli import ROOT
from tests.support.stack import (
    RawResponse,
    agent_for,
    lose_connection,
    raw_request,
    read_response,
    running_relay,
)

GUIDE = ROOT / "docs" / "self-hosting.md"


def free_port_nobody_listens_on() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Case:
    status: int
    title: str  # a regular expression for the page's first line
    guide: str  # what the guide quotes of it
    settings: dict
    visit: Callable[[Relay, int], Awaitable[RawResponse]]


async def no_host(relay: Relay, app: int) -> RawResponse:
    reader, writer = await open_from(relay.http_port)
    writer.write(b"GET / HTTP/1.1\r\n\r\n")
    response = await read_response(reader)
    writer.close()
    return response


async def basic_auth(relay: Relay, app: int) -> RawResponse:
    async with agent_for(relay, app, "pages", basic_auth="a:b") as tunnel:
        return await get(relay.http_port, tunnel.host)


async def denied(relay: Relay, app: int) -> RawResponse:
    async with agent_for(relay, app, "pages", deny=("127.0.0.0/8",)) as tunnel:
        return await get(relay.http_port, tunnel.host)


async def unknown(relay: Relay, app: int) -> RawResponse:
    return await get(relay.http_port, f"nobody.localhost:{relay.http_port}")


async def not_a_tunnel_address(relay: Relay, app: int) -> RawResponse:
    return await get(relay.http_port, f"127.0.0.1:{relay.http_port}")


async def slow(relay: Relay, app: int) -> RawResponse:
    reader, writer = await open_from(relay.http_port)
    response = await read_response(reader)
    writer.close()
    return response


async def http2_in_clear(relay: Relay, app: int) -> RawResponse:
    reader, writer = await open_from(relay.http_port)
    writer.write(f"GET / HTTP/2.0\r\nHost: pages.localhost:{relay.http_port}\r\n\r\n".encode())
    response = await read_response(reader)
    writer.close()
    return response


async def rate_limited(relay: Relay, app: int) -> RawResponse:
    async with agent_for(relay, app, "pages") as tunnel:
        assert (await get(relay.http_port, tunnel.host)).status == 200
        return await get(relay.http_port, tunnel.host)


async def too_many_connections(relay: Relay, app: int) -> RawResponse:
    _, first = await open_from(relay.http_port)
    response = await get(relay.http_port, f"pages.localhost:{relay.http_port}")
    first.close()
    return response


async def huge_head(relay: Relay, app: int) -> RawResponse:
    async with agent_for(relay, app, "pages") as tunnel:
        return await get(relay.http_port, tunnel.host, headers=[("X-Big", "x" * 70_000)])


async def app_down(relay: Relay, app: int) -> RawResponse:
    async with agent_for(relay, free_port_nobody_listens_on(), "pages") as tunnel:
        return await get(relay.http_port, tunnel.host)


async def offline(relay: Relay, app: int) -> RawResponse:
    async with agent_for(relay, app, "pages") as tunnel:
        host = tunnel.host
        await lose_connection(tunnel)  # lost, not stopped: the name is held, the tunnel offline
    await asyncio.sleep(0.05)
    return await get(relay.http_port, host)


async def busy(relay: Relay, app: int) -> RawResponse:
    async with agent_for(relay, app, "pages") as tunnel:
        reader, writer = await open_from(relay.http_port)
        writer.write(raw_request(tunnel.host))
        assert (await read_response(reader)).status == 200
        response = await get(relay.http_port, tunnel.host)
        writer.close()
        return response


CASES = {
    "400-no-host": Case(400, r"Bad request", "Bad request", {}, no_host),
    "401": Case(401, r"Sign-in required", "Sign-in required", {}, basic_auth),
    "403": Case(403, r"Not allowed from your address", "Not allowed from your address", {}, denied),
    "404-unknown": Case(404, r"No tunnel named 'nobody'", "No tunnel named", {}, unknown),
    "404-address": Case(
        404, r"No tunnel in this address", "No tunnel in this address", {}, not_a_tunnel_address
    ),
    "408": Case(408, r"Request timeout", "Request timeout", {"head_timeout": 0.3}, slow),
    "429-rate": Case(
        429, r"Too many requests", "Too many requests", {"rate": 0.1, "burst": 1}, rate_limited
    ),
    "429-connections": Case(
        429,
        r"Too many connections",
        "Too many connections",
        {"connections_per_ip": 1},
        too_many_connections,
    ),
    "431": Case(431, r"Request headers too large", "Request headers too large", {}, huge_head),
    "502": Case(
        502,
        r"Tunnel 'pages' is up, but the local app did not answer",
        "is up, but the local app did not answer",
        {},
        app_down,
    ),
    "503-offline": Case(503, r"Tunnel 'pages' is offline", "is offline", {}, offline),
    "503-busy": Case(503, r"Tunnel 'pages' is busy", "is busy", {"streams_per_agent": 1}, busy),
    "505": Case(
        505, r"HTTP version not supported", "HTTP version not supported", {}, http2_in_clear
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_every_error_page(case: Case):
    async with raw_server() as app, running_relay(**case.settings) as relay:
        response = await case.visit(relay, app.port)
    assert response.status == case.status, response.body
    first = response.body.decode().splitlines()[0]
    assert re.fullmatch(rf"{case.status} {case.title}", first), first
    assert response.header("X-Molehill-Error") == str(case.status)
    assert response.header("Connection") == "close"
    assert response.header("Cache-Control") == "no-store"
    assert case.guide in GUIDE.read_text(), f"the guide does not describe {case.guide!r}"


async def test_browsers_get_html_pages(app_port):
    async with running_relay() as relay:
        page = await get(
            relay.http_port,
            f"nobody.localhost:{relay.http_port}",
            headers=[("Accept", "text/html")],
        )
        assert page.status == 404
        assert page.header("Content-Type") == "text/html; charset=utf-8"
        assert b"<title>404 No tunnel named &#x27;nobody&#x27;</title>" in page.body


def refusal_codes() -> set[str]:
    """The codes the relay refuses agents with, read from its source."""
    files = ("server/admission.py", "server/access.py", "server/relay.py", "cluster/records.py")
    source = "".join((ROOT / "relay" / f).read_text() for f in files)
    codes = set(re.findall(r'refuse\(\s*"([a-z_]+)"', source))
    codes |= set(re.findall(r'code="([a-z_]+)"', source))  # the cluster registry's refusals
    codes |= set(re.findall(r'Verdict\(\s*None,\s*"([a-z_]+)"', source))
    return codes


def test_every_refusal_code_is_in_the_guide():
    codes = refusal_codes()
    assert {"token_missing", "name_taken", "version"} <= codes  # the reading works
    text = GUIDE.read_text()
    missing = sorted(code for code in codes if f"`{code}`" not in text)
    assert not missing, f"the guide does not describe {missing}"
