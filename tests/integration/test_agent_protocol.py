"""The relay's agent endpoint against hand-written frames: refusals say why, and an agent that
breaks the protocol loses its own link without disturbing anyone else."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from relay.wire import codec as p
from tests.support.stack import agent_for, running_relay


async def receive_frames(ws) -> list[p.Frame]:
    async with asyncio.timeout(3):
        return p.decode_all(await ws.recv())


async def hello(ws, name: str = "", window: int = p.DEFAULT_WINDOW, version: int = p.VERSION):
    await ws.send(p.encode_message(p.Hello(version, name, "", "", window)))
    return await receive_frames(ws)


async def closed_code(ws) -> int:
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(3):
            while True:
                await ws.recv()
    assert ws.close_code is not None
    return ws.close_code


async def test_welcome_describes_the_tunnel():
    async with running_relay(ping_interval=2.5) as relay, ws_connect(relay.agents_url) as ws:
        (welcome,) = await hello(ws, "hand")
        assert isinstance(welcome, p.Welcome)
        assert welcome.name == "hand"
        assert welcome.url == f"http://hand.localhost:{relay.http_port}"
        assert welcome.resume and welcome.lease == relay.settings.lease
        assert welcome.ping_interval == 2.5
        assert welcome.window == relay.settings.window
        assert relay.tunnels["hand"] is not None


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"version": p.VERSION + 1}, "version"),
        ({"window": 10}, "bad_window"),
        ({"name": "No_Good"}, "invalid_name"),
    ],
)
async def test_bad_hello_is_refused_with_a_reason(kwargs, code):
    async with running_relay() as relay, ws_connect(relay.agents_url) as ws:
        (error,) = await hello(ws, **kwargs)
        assert isinstance(error, p.Error)
        assert error.code == code and error.message
        assert await closed_code(ws) == 1008
        assert not relay.tunnels


async def test_agent_that_never_says_hello_is_dropped():
    async with running_relay(hello_timeout=0.2) as relay, ws_connect(relay.agents_url) as ws:
        assert await closed_code(ws) == 1002
        await asyncio.sleep(0.05)
        assert not relay.sessions


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(b"\xc1", id="not msgpack"),
        pytest.param(p.encode_message(p.Welcome("x", "u", "r", 1, 1, 1024)), id="relay's frame"),
        pytest.param(p.encode_message(p.Data(99, b"x")), id="data for an unopened stream"),
        pytest.param("text", id="text message"),
    ],
)
async def test_protocol_breach_costs_the_agent_its_link_only(app_port, message):
    async with (
        running_relay(lease=30.0) as relay,
        agent_for(relay, app_port, "bystander") as bystander,
        ws_connect(relay.agents_url) as ws,
    ):
        await hello(ws, "rogue")
        await ws.send(message)
        assert await closed_code(ws) in (1002, 1003)
        await asyncio.sleep(0.05)
        assert "rogue" not in relay.tunnels and "rogue" in relay.leases
        async with httpx.AsyncClient(base_url=relay.http_url) as c:
            resp = await c.get("/", headers={"Host": bystander.host})
            assert resp.status_code == 200


async def test_agent_sending_beyond_its_window_loses_the_link():
    async with running_relay() as relay, ws_connect(relay.agents_url) as ws:
        (welcome,) = await hello(ws, "greedy")
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.http_port)
        writer.write(f"GET / HTTP/1.1\r\nHost: greedy.localhost:{relay.http_port}\r\n\r\n".encode())
        opened = None
        while opened is None:  # pings may come first
            opened = next((f for f in await receive_frames(ws) if isinstance(f, p.Open)), None)
        too_much = b"x" * (welcome.window + 1)
        await ws.send(p.encode_message(p.Data(opened.stream, too_much)))
        assert await closed_code(ws) == 1002
        async with asyncio.timeout(3):
            await reader.read()  # the visitor's connection ends too
        writer.close()


async def test_agents_port_answers_health_checks_and_explains_itself():
    async with (
        running_relay() as relay,
        httpx.AsyncClient(base_url=relay.agents_url.replace("ws", "http", 1)) as c,
    ):
        health = await c.get("/healthz")
        assert (health.status_code, health.text) == (200, "ok\n")
        other = await c.get("/")
        assert other.status_code == 426
        assert "molehill http" in other.text
