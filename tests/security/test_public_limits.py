"""An open tunnel stays usable for everyone: every request head has a deadline, idle keep-alive
connections close, one client address holds at most its share of a tunnel's streams; refused
requests never reach the local app; 502 pages keep the app's address from the public."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from ipaddress import ip_network

import pytest

from tests.relay.helpers import closed_within, get, open_from
from tests.security.public_apps import basic, recording_app
from tests.support.stack import agent_for, raw_request, read_response, running_relay
from tests.support.waiting import eventually


async def hold(port: int, host: str, source: str, headers=None):
    """A keep-alive connection that made one request: it holds a stream of the tunnel."""
    reader, writer = await open_from(port, source)
    writer.write(raw_request(host, headers=headers))
    response = await read_response(reader)
    return response.status, (reader, writer)


async def test_every_request_head_of_a_connection_has_the_head_timeout():
    async with (
        recording_app("app") as app,
        running_relay(head_timeout=0.5, keepalive_timeout=30) as relay,
        agent_for(relay, app.port, "slow") as tunnel,
    ):
        reader, writer = await open_from(relay.http_port)
        writer.write(raw_request(tunnel.host, "/1"))
        assert (await read_response(reader)).status == 200
        await asyncio.sleep(0.8)  # between requests: keepalive_timeout, not head_timeout
        writer.write(f"GET /2 HTTP/1.1\r\nHost: {tunnel.host}\r\nX-Slow: ".encode())
        started = time.monotonic()
        page = await read_response(reader, timeout=3)
        assert page.status == 408
        assert 0.4 < time.monotonic() - started < 2.0
        assert await closed_within(reader, 2) == b""
        writer.close()
        session = relay.tunnels["slow"]
        await eventually(lambda: not session.streams, 2, "the stream to be freed")
        assert app.targets() == ["/1"]


async def test_idle_keep_alive_connections_close_after_keepalive_timeout(app_port):
    async with (
        running_relay(keepalive_timeout=0.5) as relay,
        agent_for(relay, app_port, "idle") as tunnel,
    ):
        reader, writer = await open_from(relay.http_port)
        writer.write(raw_request(tunnel.host))
        assert (await read_response(reader)).status == 200
        started = time.monotonic()
        assert await closed_within(reader, 3) == b""  # closed quietly: no page
        assert 0.4 < time.monotonic() - started < 2.0
        writer.close()
        session = relay.tunnels["idle"]
        await eventually(lambda: not session.streams, 2, "the stream to be freed")
        # A request in progress is not idle, and a connection in use stays open.
        reader, writer = await open_from(relay.http_port)
        writer.write(raw_request(tunnel.host, "/longpoll?seconds=1.2"))
        assert (await read_response(reader)).body == b"done waiting"
        for _ in range(4):
            await asyncio.sleep(0.3)
            writer.write(raw_request(tunnel.host))
            assert (await read_response(reader)).status == 200
        writer.close()


async def test_one_address_holds_at_most_its_share_of_a_tunnel(app_port, caplog):
    caplog.set_level(logging.INFO, logger="molehill.relay")
    async with (
        running_relay(streams_per_agent=20, max_client_share=0.5) as relay,
        agent_for(relay, app_port, "shared") as tunnel,
    ):
        held = []
        for _ in range(10):
            status, conn = await hold(relay.http_port, tunnel.host, "127.0.0.2")
            assert status == 200
            held.append(conn)
        refused = await get(relay.http_port, tunnel.host, source="127.0.0.2")
        assert refused.status == 503
        assert b"Too many connections from your address to 'shared'" in refused.body
        assert refused.header("Retry-After") == "2"
        assert "rule=max_client_share" in caplog.text
        assert (await get(relay.http_port, tunnel.host, source="127.0.0.3")).status == 200
        held.pop()[1].close()
        await eventually(lambda: len(relay.tunnels["shared"].streams) < 10, 2, "a free slot")
        assert (await get(relay.http_port, tunnel.host, source="127.0.0.2")).status == 200
        for _, writer in held:
            writer.close()


async def test_behind_a_proxy_the_share_is_the_forwarded_clients(app_port):
    async with (
        running_relay(streams_per_agent=20, trusted_proxies=[ip_network("127.0.0.1/32")]) as relay,
        agent_for(relay, app_port, "shared") as tunnel,
    ):
        held = []
        crowd = [("X-Forwarded-For", "198.51.100.9")]
        for _ in range(10):
            status, conn = await hold(relay.http_port, tunnel.host, "127.0.0.1", crowd)
            assert status == 200
            held.append(conn)
        extra = await get(relay.http_port, tunnel.host, headers=crowd)
        assert extra.status == 503
        other = [("X-Forwarded-For", "198.51.100.10")]
        assert (await get(relay.http_port, tunnel.host, headers=other)).status == 200
        # A pooled connection moves to the client of its latest request.
        reader, writer = held[0]
        writer.write(raw_request(tunnel.host, headers=other))
        assert (await read_response(reader)).status == 200
        assert (await get(relay.http_port, tunnel.host, headers=crowd)).status == 200
        for _, writer in held:
            writer.close()


async def test_idle_connections_from_a_few_addresses_make_a_tunnel_busy_only_briefly(app_port):
    async with (
        running_relay(streams_per_agent=20, keepalive_timeout=1.5, head_timeout=5) as relay,
        agent_for(relay, app_port, "crowded") as tunnel,
    ):
        # 10 idle keep-alive connections from each of three addresses, opened at once
        results = await asyncio.gather(
            *(hold(relay.http_port, tunnel.host, f"127.0.0.{2 + n % 3}") for n in range(30))
        )
        statuses = [status for status, _ in results]
        assert statuses.count(200) <= 20 and 503 in statuses, statuses
        for source in range(3):  # no address got more than its share
            assert statuses[source::3].count(200) <= 10, statuses
        # a new visitor gets in once the idle connections are closed
        await eventually(lambda: not relay.tunnels["crowded"].streams, 4, "the idle to close")
        assert (await get(relay.http_port, tunnel.host, source="127.0.0.9")).status == 200
        for _, (_, writer) in results:
            writer.close()


async def test_refused_requests_never_open_a_connection_to_the_local_app(caplog):
    caplog.set_level(logging.INFO, logger="molehill.relay")
    async with (
        recording_app("app") as app,
        running_relay(rate=0.01, burst=1) as relay,
        agent_for(relay, app.port, "auth", basic_auth="ann:s3cret") as auth,
        agent_for(relay, app.port, "deny", deny=("127.0.0.0/8",)) as deny,
        agent_for(relay, app.port, "rated") as rated,
    ):
        for _ in range(7):
            assert (await get(relay.http_port, auth.host)).status == 401
            wrong = await get(relay.http_port, auth.host, headers=[basic("ann:guess")])
            assert wrong.status == 401
            assert (await get(relay.http_port, deny.host)).status == 403
        await asyncio.sleep(0.2)
        assert app.connections == 0
        assert (await get(relay.http_port, rated.host)).status == 200  # the burst
        await eventually(lambda: app.connections == 1, 2, "the one connection")
        for _ in range(20):
            assert (await get(relay.http_port, rated.host)).status == 429
        await asyncio.sleep(0.2)
        assert app.connections == 1
    for rule in ("basic_auth", "allow_deny", "rate"):
        assert f"rule={rule}" in caplog.text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("settings", "detailed"),
    [
        ({"http_host": "127.0.0.1"}, True),
        ({"http_host": "0.0.0.0"}, False),
        ({"http_host": "127.0.0.1", "trusted_proxies": [ip_network("127.0.0.2/32")]}, False),
    ],
    ids=["loopback", "public", "behind-a-proxy"],
)
async def test_the_502_page_names_the_local_address_only_on_a_private_relay(settings, detailed):
    port = free_port()
    async with running_relay(**settings) as relay, agent_for(relay, port, "down") as tunnel:
        page = await get(relay.http_port, tunnel.host)
    assert page.status == 502
    assert b"the local app did not answer" in page.body
    assert (f"127.0.0.1:{port}".encode() in page.body) is detailed
    assert (b"refused the connection" in page.body) is detailed  # the agent's detail


async def test_an_ipv6_client_is_one_client_whatever_address_of_its_64_it_uses(app_port):
    # A subscriber gets a /64 at least and may use any address in it: counted one by one, a
    # single client would never reach its share. Behind a trusted proxy the forwarded address
    # is the client's, so real sockets can carry addresses this machine does not have.
    async with (
        running_relay(streams_per_agent=20, trusted_proxies=[ip_network("127.0.0.1/32")]) as relay,
        agent_for(relay, app_port, "shared") as tunnel,
    ):
        held = []
        for n in range(10):  # ten addresses of one /64, one stream each
            crowd = [("X-Forwarded-For", f"2001:db8:1:2::{n + 1:x}")]
            status, conn = await hold(relay.http_port, tunnel.host, "127.0.0.1", crowd)
            assert status == 200
            held.append(conn)
        other_address = [("X-Forwarded-For", "2001:db8:1:2:ffff:ffff:ffff:ffff")]
        assert (await get(relay.http_port, tunnel.host, headers=other_address)).status == 503
        next_network = [("X-Forwarded-For", "2001:db8:1:3::1")]
        assert (await get(relay.http_port, tunnel.host, headers=next_network)).status == 200
        session = relay.tunnels["shared"]
        assert session.client_streams["2001:db8:1:2::/64"] == 10
        for _, writer in held:
            writer.close()
        await eventually(lambda: not session.client_streams, 3, "the /64's count to drop to 0")


async def test_the_ipv6_prefix_is_a_setting(app_port):
    async with (
        running_relay(
            streams_per_agent=4,
            ipv6_prefix=128,  # every address its own client, as before
            trusted_proxies=[ip_network("127.0.0.1/32")],
        ) as relay,
        agent_for(relay, app_port, "shared") as tunnel,
    ):
        held = []
        for n in range(3):
            crowd = [("X-Forwarded-For", f"2001:db8::{n + 1}")]
            status, conn = await hold(relay.http_port, tunnel.host, "127.0.0.1", crowd)
            assert status == 200
            held.append(conn)
        assert sorted(relay.tunnels["shared"].client_streams.values()) == [1, 1, 1]
        for _, writer in held:
            writer.close()
