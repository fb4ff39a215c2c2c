"""Visitors behind a trusted proxy: every X-Forwarded-For line counts, and a proxy connection
that dies mid-request frees its stream on the relay and on the agent."""

from __future__ import annotations

import json
from ipaddress import ip_network

import pytest

from relay.events import RequestRecord
from tests.relay.helpers import open_from
from tests.security.public_apps import abort_with_reset
from tests.support.stack import agent_for, raw_request, read_response, running_relay
from tests.support.waiting import eventually

TRUSTED = [ip_network("127.0.0.1/32"), ip_network("10.0.0.0/8")]


@pytest.mark.parametrize(
    ("lines", "status", "chain"),
    [
        # The proxy added its own line: the denied client is on the second one.
        (["198.51.100.1", "203.0.113.7"], 403, None),
        (["198.51.100.1", "203.0.113.7, 10.0.0.5"], 403, None),  # behind another trusted hop
        # Whatever a client writes left of its own address is not believed.
        (["203.0.113.7, 198.51.100.1"], 200, "203.0.113.7, 198.51.100.1, 127.0.0.1"),
        (["203.0.113.7", "198.51.100.1"], 200, "203.0.113.7, 198.51.100.1, 127.0.0.1"),
    ],
    ids=["second-line", "second-line-two-hops", "spoofed-left", "spoofed-first-line"],
)
async def test_every_forwarded_for_line_counts(app_port, lines, status, chain):
    async with (
        running_relay(trusted_proxies=TRUSTED) as relay,
        agent_for(relay, app_port, "guarded", deny=("203.0.113.7/32",)) as tunnel,
    ):
        reader, writer = await open_from(relay.http_port)
        headers = [("X-Forwarded-For", line) for line in lines]
        writer.write(raw_request(tunnel.host, "/echo", headers=headers))
        response = await read_response(reader)
        writer.close()
        assert response.status == status, response.body
        if status == 403:
            assert b"does not accept visitors from 203.0.113.7" in response.body
        else:
            seen = dict((k.lower(), v) for k, v in json.loads(response.body)["headers"])
            assert seen["x-forwarded-for"] == chain


async def test_the_agents_log_names_the_forwarded_client_not_the_proxy(app_port):
    async with (
        running_relay(trusted_proxies=TRUSTED) as relay,
        agent_for(relay, app_port, "logged") as tunnel,
    ):
        reader, writer = await open_from(relay.http_port)
        headers = [("X-Forwarded-For", "203.0.113.50")]
        writer.write(raw_request(tunnel.host, "/echo", headers=headers))
        assert (await read_response(reader)).status == 200
        writer.close()
        records = lambda: [e for e in tunnel.events if isinstance(e, RequestRecord)]  # noqa: E731
        await eventually(records, what="the agent's record of the request")
        assert records()[0].client == "203.0.113.50"


async def test_a_proxy_connection_reset_mid_request_frees_its_stream(app_port):
    async with (
        running_relay(trusted_proxies=TRUSTED, streams_per_agent=8) as relay,
        agent_for(relay, app_port, "longpoll") as tunnel,
    ):
        session = relay.tunnels["longpoll"]
        link = tunnel.agent.link
        assert link is not None
        for n in range(5):
            reader, writer = await open_from(relay.http_port)
            forwarded = [("X-Forwarded-For", f"198.51.100.{n}")]
            writer.write(raw_request(tunnel.host, "/longpoll?seconds=2", headers=forwarded))
            await eventually(lambda: session.streams and link.streams, what="the stream opened")
            abort_with_reset(writer)
            await eventually(
                lambda: not session.streams and not link.streams, 3, "the stream to be freed"
            )
        assert not session.client_streams
        # the tunnel still takes as many visitors as before
        readers = []
        for n in range(8):
            reader, writer = await open_from(relay.http_port)
            writer.write(raw_request(tunnel.host, headers=[("X-Forwarded-For", f"192.0.2.{n}")]))
            readers.append((reader, writer))
        for reader, writer in readers:
            assert (await read_response(reader)).status == 200
            writer.close()


@pytest.mark.parametrize("port", ["1@evil.example", "80x", "-1"])
async def test_a_host_whose_port_is_not_a_number_reaches_no_tunnel(app_port, port):
    """`NAME.DOMAIN:1@evil.example` was routed to NAME, while a URL made from that Host (a
    replay through the public URL, the curl and HAR exports) names evil.example."""
    async with running_relay() as relay, agent_for(relay, app_port, "pay") as tunnel:
        reader, writer = await open_from(relay.http_port)
        writer.write(raw_request(f"{tunnel.host.split(':')[0]}:{port}", "/echo"))
        response = await read_response(reader)
        writer.close()
        assert response.status in (400, 404), response.body
        assert b"/echo" not in response.body  # the app never answered
