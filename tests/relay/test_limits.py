"""The relay's limits, each against a live relay on loopback: slow or oversized request heads,
idle connections, connections per address, request rates, streams per agent, and agents that
send too much, too many or the wrong frames. Smuggling shapes are refused with 400."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from ipaddress import ip_network

import pytest

from relay.wire import codec as p
from tests.relay.helpers import (
    closed_within,
    first_frame_of,
    get,
    open_from,
    raw_agent,
)
from tests.support.apps import deaf_app, raw_server
from tests.support.stack import agent_for, raw_request, read_response, running_relay
from tests.support.waiting import eventually


async def test_slowloris_gets_408_after_the_head_timeout(app_port):
    async with running_relay(head_timeout=0.5) as relay, agent_for(relay, app_port, "slow") as t:
        reader, writer = await open_from(relay.http_port)
        started = time.monotonic()
        writer.write(f"GET / HTTP/1.1\r\nHost: {t.host}\r\nX-Slow: ".encode())
        response = await read_response(reader, timeout=3)
        elapsed = time.monotonic() - started
        assert response.status == 408
        assert 0.4 < elapsed < 2.0
        assert await closed_within(reader, 2) == b""
        writer.close()
        # a visitor that connects and says nothing at all is closed the same way
        reader, writer = await open_from(relay.http_port)
        assert (await read_response(reader, timeout=3)).status == 408
        writer.close()


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ([("X-Big", "a" * 9000)], b"larger than 8192 bytes"),
        ([(f"X-H{i}", "v") for i in range(30)], b"more than 20 header lines"),
    ],
    ids=["oversized-head", "too-many-lines"],
)
async def test_oversized_heads_get_431(headers, says):
    async with (
        raw_server() as app,
        running_relay(max_head=8192, max_headers=20) as relay,
        agent_for(relay, app.port, "big") as tunnel,
    ):
        response = await get(relay.http_port, tunnel.host, headers=headers)
        assert response.status == 431
        assert says in response.body
        assert app.received == b""
        # just under the limits is fine
        fine = await get(relay.http_port, tunnel.host, headers=[("X-H", "v")] * 18)
        assert fine.status == 200


async def test_idle_connection_is_closed_on_both_sides():
    async with (
        raw_server() as app,
        running_relay(idle_timeout=1) as relay,
        agent_for(relay, app.port, "idle") as tunnel,
    ):
        reader, writer = await open_from(relay.http_port)
        writer.write(raw_request(tunnel.host))
        assert (await read_response(reader)).status == 200
        started = time.monotonic()
        await closed_within(reader, 3.5)
        elapsed = time.monotonic() - started
        assert 0.9 < elapsed < 3.0, elapsed
        await asyncio.wait_for(app.closed.wait(), 2)  # the agent closed the app's connection
        writer.close()


async def test_connections_per_client_address(app_port):
    async with (
        running_relay(connections_per_ip=3) as relay,
        agent_for(relay, app_port, "many") as tunnel,
    ):
        conns = [await open_from(relay.http_port) for _ in range(3)]
        reader, writer = await open_from(relay.http_port)
        refused = await read_response(reader)
        assert refused.status == 429
        assert refused.header("Retry-After") == "5"
        assert b"too many open connections from 127.0.0.1" in refused.body
        assert await closed_within(reader, 2) == b""
        writer.close()
        # another address is counted apart
        assert (await get(relay.http_port, tunnel.host, source="127.0.0.2")).status == 200
        for reader, writer in conns:
            writer.write(raw_request(tunnel.host))
            assert (await read_response(reader)).status == 200
        conns[0][1].close()
        await asyncio.sleep(0.1)
        assert (await get(relay.http_port, tunnel.host)).status == 200  # a slot came free
        for _, writer in conns[1:]:
            writer.close()


async def test_connections_per_address_does_not_limit_a_trusted_proxy(app_port):
    async with (
        running_relay(connections_per_ip=2, trusted_proxies=[ip_network("127.0.0.1/32")]) as relay,
        agent_for(relay, app_port, "proxied") as tunnel,
    ):
        conns = [await open_from(relay.http_port) for _ in range(3)]
        for n, (reader, writer) in enumerate(conns):
            forwarded = [("X-Forwarded-For", f"198.51.100.{n + 1}")]
            writer.write(raw_request(tunnel.host, headers=forwarded))
            assert (await read_response(reader)).status == 200
        for _, writer in conns:
            writer.close()


async def test_per_tunnel_rate_limit(app_port):
    async with (
        running_relay(rate=5.0, burst=5.0) as relay,
        agent_for(relay, app_port, "rated") as tunnel,
        agent_for(relay, app_port, "other") as other,
    ):
        statuses = []
        for _ in range(20):
            response = await get(relay.http_port, tunnel.host)
            statuses.append(response.status)
            if response.status == 429:
                assert response.header("Retry-After") == "1"
                assert b"more requests than its relay allows" in response.body
        assert set(statuses) == {200, 429}
        assert 5 <= statuses.count(200) <= 8, statuses
        assert statuses[:5] == [200] * 5  # the burst
        assert (await get(relay.http_port, other.host)).status == 200  # per tunnel
        await asyncio.sleep(1.0)
        after = [(await get(relay.http_port, tunnel.host)).status for _ in range(4)]
        assert after == [200] * 4


async def test_streams_per_agent():
    async with (
        raw_server() as app,
        running_relay(streams_per_agent=2) as relay,
        agent_for(relay, app.port, "narrow") as tunnel,
    ):
        conns = []
        for n in range(2):  # from two addresses: one may hold only half (max_client_share)
            reader, writer = await open_from(relay.http_port, f"127.0.0.{n + 2}")
            writer.write(raw_request(tunnel.host))
            assert (await read_response(reader)).status == 200  # kept alive: holds a stream
            conns.append((reader, writer))
        busy = await get(relay.http_port, tunnel.host)
        assert busy.status == 503
        assert b"is busy" in busy.body and busy.header("Retry-After") == "2"
        conns[0][1].close()
        await asyncio.sleep(0.2)
        assert (await get(relay.http_port, tunnel.host)).status == 200
        conns[1][1].close()


async def closed_code(ws) -> int:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(3):
            while True:
                await ws.recv()
    assert ws.close_code is not None, "the relay did not close the hostile agent's link"
    return ws.close_code


@contextlib.asynccontextmanager
async def bystander_and_rogue(app_port: int, **relay_settings: object):
    async with (
        running_relay(lease=30.0, **relay_settings) as relay,
        agent_for(relay, app_port, "bystander") as bystander,
        raw_agent(relay, "rogue", max_size=None) as (ws, welcome),
    ):
        assert isinstance(welcome, p.Welcome)
        yield relay, bystander, ws, welcome
        # whatever the rogue did, the other tunnel keeps serving
        assert (await get(relay.http_port, bystander.host)).status == 200
        assert bystander.agent.state == "online"


async def open_stream(relay, ws) -> tuple[p.Open, asyncio.StreamReader, asyncio.StreamWriter]:
    """A visitor connects to the rogue's tunnel; return the OPEN the rogue gets."""
    reader, writer = await open_from(relay.http_port)
    writer.write(raw_request(f"rogue.localhost:{relay.http_port}"))
    return await first_frame_of(ws, p.Open), reader, writer


async def test_agent_message_larger_than_max_message_is_dropped(app_port):
    async with bystander_and_rogue(app_port, max_message=64 * 1024) as (relay, _, ws, _w):
        await ws.send(p.encode_message(p.Ping(1), p.Data(1, b"x" * 100_000)))
        assert await closed_code(ws) == 1009  # message too big
        await asyncio.sleep(0.05)
        assert "rogue" not in relay.tunnels


@pytest.mark.parametrize("per_message", [5000, 1], ids=["one-message", "many-messages"])
async def test_flood_of_frames_for_streams_never_opened_is_dropped(app_port, per_message):
    async with bystander_and_rogue(app_port) as (relay, _, ws, _w):
        frames = [p.Credit(sid, 1000) for sid in range(1000, 6000)]
        with contextlib.suppress(Exception):
            for start in range(0, len(frames), per_message):
                await ws.send(p.encode_message(*frames[start : start + per_message]))
        assert await closed_code(ws) == 1002
        assert "rogue" not in relay.tunnels


async def test_flood_of_frames_for_a_closed_stream_is_harmless(app_port):
    async with bystander_and_rogue(app_port) as (relay, _, ws, _w):
        opened, reader, writer = await open_stream(relay, ws)
        await ws.send(p.encode_message(p.Reset(opened.stream, "gone", "the agent gave up")))
        await closed_within(reader, 2)
        writer.close()
        # frames that crossed the RESET on the wire are normal, not hostile: ignored
        late = [p.Credit(opened.stream, 1), p.Data(opened.stream, b"x"), p.End(opened.stream)]
        await ws.send(p.encode_message(*late * 1300))  # within MAX_FRAMES
        await asyncio.sleep(0.2)
        assert relay.tunnels.get("rogue") is not None
        assert not relay.tunnels["rogue"].streams


async def test_credit_overflow_drops_the_agent(app_port):
    async with bystander_and_rogue(app_port) as (relay, _, ws, _w):
        opened, reader, writer = await open_stream(relay, ws)
        await ws.send(p.encode_message(p.Credit(opened.stream, p.MAX_WINDOW)))
        assert await closed_code(ws) == 1002
        page = await read_response(reader)
        assert page.status == 503  # the visitor is told the tunnel went away
        writer.close()


async def test_data_beyond_the_window_drops_the_agent_and_says_why(app_port, caplog):
    caplog.set_level(logging.INFO, logger="molehill.relay")
    async with bystander_and_rogue(app_port) as (relay, _, ws, welcome):
        opened, _reader, writer = await open_stream(relay, ws)
        await ws.send(p.encode_message(p.Data(opened.stream, b"x" * (welcome.window + 1))))
        assert await closed_code(ws) == 1002
        writer.close()
    dropped = [r.getMessage() for r in caplog.records if "agent_dropped" in r.getMessage()]
    assert len(dropped) == 1, caplog.text
    assert "name=rogue" in dropped[0]
    assert f"peer sent {welcome.window + 1} bytes with {welcome.window} granted" in dropped[0]


SMUGGLING = {
    "cl-and-te": b"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two-cl": b"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    "te-not-chunked-last": b"POST / HTTP/1.1\r\nHost: {host}\r\n"
    b"Transfer-Encoding: chunked, identity\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: {host}\r\nX-A: one\r\n two\r\n\r\n",
    "http10-te": b"POST / HTTP/1.0\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: {host}\r\nHost: other.localhost\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost: {host}\r\nContent-Length : 5\r\n\r\nhello",
}


@pytest.mark.parametrize("shape", list(SMUGGLING))
async def test_smuggling_shapes_are_refused(shape):
    async with (
        raw_server() as app,
        running_relay() as relay,
        agent_for(relay, app.port, "smug") as tunnel,
    ):
        reader, writer = await open_from(relay.http_port)
        writer.write(SMUGGLING[shape].replace(b"{host}", tunnel.host.encode()))
        response = await read_response(reader)
        # A Transfer-Encoding other than exactly "chunked" is 501, as nginx answers it.
        assert response.status == (501 if shape == "te-not-chunked-last" else 400), response.body
        assert response.header("Connection") == "close"
        assert await closed_within(reader, 2) == b""
        writer.close()
        await asyncio.sleep(0.05)
        assert app.received == b""  # nothing reached the app
        assert (await get(relay.http_port, tunnel.host)).status == 200


async def test_a_visitor_closing_between_requests_is_uncounted_at_once():
    """The app answers and never closes (it ignores the EOF the agent passes on): the visitor's
    close between requests frees its place in connections_per_ip at once, and the agent's
    connection to the app with it."""
    async with (
        deaf_app() as (port, writers),
        running_relay(connections_per_ip=2) as relay,
        agent_for(relay, port, "deaf") as t,
    ):
        for _ in range(6):
            got = await get(relay.http_port, t.host, "/")
            assert (got.status, got.body) == (200, b"ok")
        assert len(writers) == 6
        await eventually(lambda: not relay.per_ip and not t.agent.link.streams, 2.0)
