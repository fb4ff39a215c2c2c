"""What visitors and agents are told when something is wrong, and that one bad connection never
disturbs the others on the same tunnel."""

from __future__ import annotations

import asyncio
import json
import re
import socket

import httpx
import pytest

from relay.agent import Agent, AgentSettings, Refused
from relay.http.names import ADJECTIVES, NOUNS
from tests.support.apps import silent_server
from tests.support.stack import (
    agent_for,
    lose_connection,
    open_raw,
    raw_request,
    read_response,
    running_relay,
    tunnel_to,
)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def get(port: int, host: str, path: str = "/", **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
        return await c.get(path, headers={"Host": host, **headers})


async def closes(reader: asyncio.StreamReader, timeout: float = 2.0) -> bool:
    async with asyncio.timeout(timeout):
        return await reader.read() == b""


async def test_unknown_tunnel_is_404_naming_it():
    async with running_relay() as relay:
        host = f"nosuch.localhost:{relay.http_port}"
        resp = await get(relay.http_port, host, Accept="*/*")
        assert resp.status_code == 404
        assert resp.headers["content-type"].startswith("text/plain")
        assert "nosuch" in resp.text
        assert "molehill http" in resp.text
        assert resp.headers["connection"] == "close"

        html = await get(relay.http_port, host, Accept="text/html,application/xhtml+xml")
        assert html.status_code == 404
        assert html.headers["content-type"].startswith("text/html")
        assert html.text.lstrip().lower().startswith("<!doctype html>")
        assert "nosuch" in html.text and "molehill http" in html.text


async def test_error_page_for_head_has_no_body():
    async with running_relay() as relay:
        reader, writer = await open_raw(relay.http_port)
        writer.write(raw_request(f"nosuch.localhost:{relay.http_port}", method="HEAD"))
        resp = await read_response(reader, head_only=True)
        assert resp.status == 404
        assert int(resp.header("Content-Length") or 0) > 0
        assert await reader.read() == b""  # no body followed, then the relay closed
        writer.close()


async def test_local_app_not_listening_is_502_naming_the_address():
    port = closed_port()
    async with running_relay() as relay, agent_for(relay, port, "down") as t:
        resp = await get(relay.http_port, t.host)
        assert resp.status_code == 502
        assert f"127.0.0.1:{port}" in resp.text
        assert "down" in resp.text
        # the tunnel itself stays up and keeps answering
        assert (await get(relay.http_port, t.host)).status_code == 502
        assert t.agent.state == "online"
        # the request log shows what the visitor got
        await asyncio.sleep(0.05)
        assert [(r.path, r.status) for r in t.records()] == [("/", 502), ("/", 502)]


async def test_agent_gone_is_503_offline(app_port):
    async with running_relay(lease=30.0) as relay:
        async with agent_for(relay, app_port, "gone") as t:
            host = t.host
            assert (await get(relay.http_port, host)).status_code == 200
            await lose_connection(t)  # a crash, not a stop: the name is held
        await asyncio.sleep(0.05)
        assert "gone" in relay.leases
        resp = await get(relay.http_port, host)
        assert resp.status_code == 503
        assert "offline" in resp.text.lower()
        assert "gone" in resp.text


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(b"\x16\x03\x01\x00\xa5garbage\r\n\r\n", id="garbage"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: {host}\r\nX: a\r\n b\r\n\r\n", id="obs-fold"),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            id="bad chunk size",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            id="cl and te",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: {host}\r\n\r\nGET / HTTP/1.1\r\nHost: {host}\r\n"
            b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n",
            id="good then two content-lengths",
        ),
    ],
)
async def test_malformed_request_is_400_and_closes_while_others_keep_working(app_port, bad):
    async with (
        tunnel_to(app_port, "strict") as t,
        httpx.AsyncClient(
            base_url=t.base,
            headers={"Host": t.host},
            limits=httpx.Limits(max_connections=1),
        ) as good,
    ):
        assert (await good.get("/echo/before")).status_code == 200
        reader, writer = await open_raw(t.relay.http_port)
        writer.write(bad.replace(b"{host}", t.host.encode()))
        responses = [await read_response(reader)]
        while responses[-1].status == 200:  # the good request before the bad one
            responses.append(await read_response(reader))
        assert responses[-1].status == 400
        assert await closes(reader)
        writer.close()
        # the well-behaved keep-alive client on the same tunnel never noticed
        for i in range(3):
            assert (await good.get(f"/echo/after/{i}")).status_code == 200
        assert len(t.relay.tunnels) == 1


async def test_bare_localhost_names_no_tunnel():
    async with running_relay() as relay:
        for host in ("localhost", f"localhost:{relay.http_port}", f"127.0.0.1:{relay.http_port}"):
            resp = await get(relay.http_port, host)
            assert resp.status_code == 404
            assert "does not name a tunnel" in resp.text


async def test_request_without_host_is_400():
    async with running_relay() as relay:
        reader, writer = await open_raw(relay.http_port)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        assert (await read_response(reader)).status == 400
        writer.close()


async def test_head_that_never_completes_times_out():
    async with running_relay(head_timeout=0.2) as relay:
        reader, writer = await open_raw(relay.http_port)
        writer.write(b"GET / HTTP/1.1\r\nHost: a.localhost\r\n")
        resp = await read_response(reader, timeout=2)
        assert resp.status == 408
        assert await closes(reader)
        writer.close()


async def test_name_taken_by_a_live_agent_is_refused(app_port):
    async with running_relay() as relay, agent_for(relay, app_port, "taken"):
        second = Agent(AgentSettings(local_port=app_port, relay=relay.agents_url, name="taken"))
        with pytest.raises(Refused) as info:
            async with asyncio.timeout(5):
                await second.run()
        assert info.value.code == "name_taken"
        assert "taken" in info.value.message and "in use" in info.value.message
        assert second.state == "error"
        assert relay.tunnels["taken"] is not None


async def test_invalid_name_is_refused(app_port):
    async with running_relay() as relay:
        agent = Agent(AgentSettings(local_port=app_port, relay=relay.agents_url, name="Bad_Name"))
        with pytest.raises(Refused) as info:
            async with asyncio.timeout(5):
                await agent.run()
        assert info.value.code == "invalid_name"


async def test_random_name_is_adjective_noun(app_port):
    async with running_relay() as relay, agent_for(relay, app_port, "") as t:
        assert re.fullmatch(r"[a-z]+-[a-z]+", t.agent.name)
        adjective, noun = t.agent.name.split("-")
        assert adjective in ADJECTIVES and noun in NOUNS
        assert t.agent.url == f"http://{t.agent.name}.localhost:{relay.http_port}"
        assert (await get(relay.http_port, t.host)).status_code == 200


async def test_a_connection_moves_to_another_tunnel_between_requests(app_port):
    """Like a proxy pooling connections: with nothing in flight, the next Host wins."""
    async with (
        running_relay() as relay,
        agent_for(relay, app_port, "first") as first,
        agent_for(relay, app_port, "second") as second,
    ):
        reader, writer = await open_raw(relay.http_port)
        for tunnel in (first, second, first):
            writer.write(raw_request(tunnel.host, "/echo"))
            resp = await read_response(reader)
            assert resp.status == 200
            headers = dict((k.lower(), v) for k, v in json.loads(resp.body)["headers"])
            assert headers["host"] == tunnel.host
        writer.close()


async def test_a_pipelined_request_for_another_tunnel_is_421_or_cut(app_port):
    """With an answer still on its way the connection cannot move: the answer arrives, then
    421 for the other tunnel's request, and the connection ends."""
    async with (
        running_relay() as relay,
        agent_for(relay, app_port, "first") as first,
        agent_for(relay, app_port, "second") as second,
    ):
        reader, writer = await open_raw(relay.http_port)
        writer.write(
            raw_request(first.host, "/longpoll?seconds=0.3") + raw_request(second.host, "/")
        )
        assert (await read_response(reader)).body == b"done waiting"
        assert (await read_response(reader)).status == 421
        assert await closes(reader)
        writer.close()


async def test_agent_stopping_before_the_response_gives_503():
    async with (
        silent_server() as port,
        running_relay() as relay,
        agent_for(relay, port, "leaving") as t,
    ):
        reader, writer = await open_raw(relay.http_port)
        writer.write(raw_request(t.host, "/"))
        await asyncio.sleep(0.2)  # the request reached the app, which is taking its time
        t.agent.stop()
        resp = await read_response(reader, timeout=3)
        assert resp.status == 503
        assert "leaving" in resp.body.decode()
        writer.close()


async def test_too_many_headers_is_431(app_port):
    async with tunnel_to(app_port, "fat", max_headers=20) as t:
        reader, writer = await open_raw(t.relay.http_port)
        writer.write(raw_request(t.host, "/", headers=[(f"X-H{i}", "v") for i in range(30)]))
        resp = await read_response(reader)
        assert resp.status == 431
        assert await closes(reader)
        writer.close()


async def test_head_larger_than_max_head_is_431(app_port):
    async with tunnel_to(app_port, "big", max_head=4096) as t:
        reader, writer = await open_raw(t.relay.http_port)
        writer.write(raw_request(t.host, "/", headers=[("X-Big", "y" * 8000)]))
        resp = await read_response(reader)
        assert resp.status == 431
        writer.close()
