"""The node-to-node link under hostile input: no secret, a wrong one, a replayed or stale
request, garbage instead of a request. Each such connection closes; the real links and the
visitors they carry are unaffected. Plus the sans-I/O verifier, and flow control through a
spliced stream whose visitor stops reading."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from relay.cluster import node_auth
from relay.server import Relay
from relay.transport.link import binary_frame_header
from relay.wire import codec as p
from tests.cluster.nodes import SECRET, cluster_nodes, linked, node_settings
from tests.relay.helpers import closed_within, get, open_from
from tests.support.apps import pattern_sha256
from tests.support.stack import agent_for, raw_request, read_response
from tests.support.waiting import eventually

SIZE = 1_000_000


async def through(node, name: str) -> str:
    got = await get(node.http_port, f"{name}.localhost:{node.http_port}", f"/download?size={SIZE}")
    assert got.status == 200, got.head
    return hashlib.sha256(got.body).hexdigest()


async def dial(node, headers: dict[str, str]):
    url = f"ws://127.0.0.1:{node.agents_port}{node_auth.PATH}"
    return ws_connect(url, additional_headers=headers, open_timeout=3)


async def test_links_without_the_secret_are_refused_and_the_real_links_carry_on(
    redis_server, app_port
):
    async with (
        cluster_nodes(redis_server.url, 2) as (one, two),
        agent_for(one, app_port, "web"),
    ):
        await linked([one, two])
        await eventually(lambda: two.routes.get("web") is not None, what="a route to web")
        assert await through(two, "web") == pattern_sha256(SIZE)

        wrong = node_auth.sign("another-secret-0123456789", "node2", "node1")
        good = node_auth.sign(SECRET, "intruder", "node1")
        stale = node_auth.sign(SECRET, "node2", "node1", now=1_000_000.0)
        for headers, says in [
            ({}, b"missing node authentication headers"),
            (wrong, b"bad node authentication"),
            ({**good, node_auth.NODE: "node2"}, b"bad node authentication"),  # id not signed
            (stale, b"off (are the nodes' clocks in sync?)"),
            ({**good, node_auth.MAC: "x" * 5000}, b""),  # an oversized header
        ]:
            with pytest.raises(InvalidStatus) as info:
                async with await dial(one, headers):
                    pass
            assert info.value.response.status_code in (400, 403, 431), headers
            assert says in info.value.response.body
        # a recorded request (headers and all) does not open a second link
        async with await dial(one, good) as first:
            await first.recv()  # the node's HELLO: the link was accepted once
        with pytest.raises(InvalidStatus) as info:
            async with await dial(one, good):
                pass
        assert b"replayed" in info.value.response.body

        # garbage where the upgrade request should be: that connection closes, alone
        for junk in (os.urandom(4096), b"\x00" * 70000, b"GET /_molehill/node HTTP/1.1\r\n\r\n"):
            reader, writer = await open_from(one.agents_port)
            writer.write(junk)
            await closed_within(reader, 5)
            writer.close()
        assert await through(two, "web") == pattern_sha256(SIZE)
        assert two.node is not None and two.node.links.get("node1") is not None


async def test_a_request_recorded_before_the_node_restarted_is_not_replayed(redis_server):
    """The nonces a node has seen are in its memory: a request used once could be used again
    once the node restarted (within the 60 s a signature is good for), for a link that opens
    streams to its tunnels past their rules. The node now refuses requests signed before it
    started; a request signed now still gets a link."""
    settings = node_settings(redis_server.url, "node1")
    async with Relay(settings) as one:
        recorded = node_auth.sign(SECRET, "node2", "node1")
        async with await dial(one, recorded) as first:
            await first.recv()  # the node's HELLO: the link was accepted once
    await asyncio.sleep(node_auth.RESTART_SLACK + 1.0)  # an operator restarts it a moment later
    async with Relay(settings) as one:  # the same node, started again: its nonces forgotten
        with pytest.raises(InvalidStatus) as info:
            async with await dial(one, recorded):
                pass
        assert info.value.response.status_code == 403
        assert b"signed before this node started" in info.value.response.body
        async with await dial(one, node_auth.sign(SECRET, "node2", "node1")) as fresh:
            assert isinstance(p.decode_all(await fresh.recv())[0], p.Hello)


def test_the_verifier_checks_mac_time_and_nonce():
    now = [1_000_000.0]
    verifier = node_auth.Verifier(SECRET, "node1", clock=lambda: now[0])
    headers = node_auth.sign(SECRET, "node2", "node1", now=now[0])
    assert verifier.check(headers) is None
    assert verifier.check(headers) == "replayed node authentication"
    other = node_auth.sign(SECRET, "node2", "node9", now=now[0])  # signed for another node
    assert "bad node authentication" in (verifier.check(other) or "")
    late = node_auth.sign(SECRET, "node2", "node1", now=now[0] - 61)
    assert "off" in (verifier.check(late) or "")
    for key in (node_auth.TIME, node_auth.NONCE, node_auth.MAC, node_auth.NODE):
        broken = {**node_auth.sign(SECRET, "node2", "node1", now=now[0]), key: "\udcff\x00"}
        assert verifier.check(broken) is not None
    # nonces are forgotten after twice the allowed skew, and never pile up without bound
    small = node_auth.Verifier(SECRET, "node1", clock=lambda: now[0], max_nonces=10)
    for _ in range(50):
        assert small.check(node_auth.sign(SECRET, "node2", "node1", now=now[0])) is None
    assert len(small.seen) <= 10
    reply = node_auth.reply(SECRET, "abc")
    assert node_auth.reply_valid(SECRET, "abc", reply)
    assert not node_auth.reply_valid(SECRET, "abd", reply)
    assert not node_auth.reply_valid("x" * 20, "abc", reply)


async def test_a_visitor_who_stops_reading_through_another_node_stalls_only_their_stream(
    redis_server, app_port
):
    """Flow control end to end: the owner node holds at most a window or two of the stalled
    download, another visitor is served meanwhile, and the whole download arrives intact."""
    big = 64_000_000
    async with (
        cluster_nodes(redis_server.url, 2) as (one, two),
        agent_for(one, app_port, "web"),
    ):
        await linked([one, two])
        await eventually(lambda: two.routes.get("web") is not None, what="a route to web")
        host = f"web.localhost:{two.http_port}"
        reader, writer = await asyncio.open_connection("127.0.0.1", two.http_port, limit=64 * 1024)
        writer.transport.set_write_buffer_limits(0)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_RCVBUF, 65536)
        writer.write(raw_request(host, f"/download?size={big}"))
        head = await read_response(reader, head_only=True)
        assert head.status == 200
        digest = hashlib.sha256()
        first = await reader.readexactly(1_000_000)
        digest.update(first)
        await asyncio.sleep(1.5)  # the visitor stalls; everything upstream must stop too

        window = one.settings.window
        held = sum(
            len(piece)
            for peer in one.node_peers
            for end in peer.streams.values()
            for piece in [*end.held, *(end.other.held if end.other else [])]
        )
        assert held <= 2 * window, f"the owner node holds {held} bytes of a stalled stream"
        assert await through(two, "web") == pattern_sha256(SIZE)  # others are served

        got = len(first)
        while got < big:
            chunk = await reader.read(1 << 20)
            assert chunk, f"ended after {got} bytes"
            digest.update(chunk)
            got += len(chunk)
        writer.close()
        assert digest.hexdigest() == pattern_sha256(big)


async def test_an_authenticated_link_s_bad_opens_are_reset_alone(redis_server, app_port):
    """A peer with the secret speaks the wire session by hand: OPENs that do not name
    NAME/CLIENT, or name no tunnel here, are reset with a code; a good one on the same link
    reaches the agent with the client address it carried."""
    async with (
        cluster_nodes(redis_server.url, 1) as (one,),
        agent_for(one, app_port, "web") as tunnel,
    ):
        headers = node_auth.sign(SECRET, "handmade", "node1")
        async with await dial(one, headers) as ws:
            hello = p.decode_all(await ws.recv())[0]
            assert isinstance(hello, p.Hello) and hello.name == "node1"
            welcome = p.Welcome("", "", "", 0.0, 5.0, p.DEFAULT_WINDOW)
            bad = [
                "",
                "web",
                "/127.0.0.1",
                "Bad_Name/127.0.0.1",
                "x" * 200 + "/1.2.3.4",
                "nobody/1.2.3.4",
            ]
            opens = [p.Open(i + 1, host, 1) for i, host in enumerate(bad)]
            good = p.Open(len(bad) + 1, "web/127.0.0.5", 4242)
            request = raw_request("web.localhost", "/echo")
            await ws.send(p.encode_message(welcome, *opens, good, p.Data(good.stream, request)))
            resets: dict[int, str] = {}
            body = b""
            async with asyncio.timeout(5):
                while len(resets) < len(bad) or b"}" not in body:
                    for frame in p.decode_all(await ws.recv()):
                        if isinstance(frame, p.Reset):
                            resets[frame.stream] = frame.code
                        elif isinstance(frame, p.Data) and frame.stream == good.stream:
                            body += frame.data
            assert set(resets) == {o.stream for o in opens}
            assert resets[len(bad)] == "session_lost"  # a valid name with no tunnel here
            assert {resets[i + 1] for i in range(len(bad) - 1)} == {"bad_open"}
            assert b"200 OK" in body  # the owner passes the stream on as it came
        await eventually(lambda: tunnel.records(), what="the agent's record")
        assert tunnel.records()[-1].client.startswith("127.0.0.5")


async def test_repeated_headers_on_the_agents_port_get_an_answer_not_a_traceback(
    redis_server, caplog
):
    """Header lines repeated (legal for Connection, RFC 9110 5.3) made websockets' Headers.get
    raise inside data_received: the connection was dropped unanswered and asyncio logged a
    traceback, for anyone who can reach the port. Each gets its answer now; a node link with
    a repeated authentication header is refused, whichever copy carries a valid MAC."""
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    upgrade = f"Upgrade: websocket\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    signed = node_auth.sign(SECRET, "node9", "node1")
    auth = "".join(f"{k}: {v}\r\n" for k, v in signed.items())
    cases = [
        ("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nConnection: close\r\n", b"426"),
        (
            f"GET / HTTP/1.1\r\nHost: x\r\n{upgrade}"
            "Connection: keep-alive\r\nConnection: Upgrade\r\n",
            b"101",
        ),
        (
            f"GET {node_auth.PATH} HTTP/1.1\r\nHost: x\r\n{upgrade}Connection: Upgrade\r\n{auth}"
            f"{node_auth.NODE}: node8\r\n",
            b"403",
        ),
    ]
    caplog.set_level(logging.ERROR)
    async with cluster_nodes(redis_server.url, 1) as (one,):
        for request, status in cases:
            reader, writer = await open_from(one.agents_port)
            writer.write(request.encode() + b"\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 " + status), (request, head)
            if status == b"403":
                body = await asyncio.wait_for(reader.read(), 5)
                assert b"repeated node authentication headers" in body
            writer.close()
        assert one.node is not None and not one.node_peers
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("proofs", [1, 2])
async def test_a_node_that_cannot_prove_the_secret_gets_no_link_whatever_it_sends_behind(
    redis_server, caplog, proofs
):
    """An impostor at a node's URL answers the upgrade with 101 and a wrong proof, and its
    HELLO in the same packet. The HELLO was handled after the failed proof: the link was
    WELCOMEd and logged up (never used: it was closing). Nothing after a failed proof counts.
    Two proof headers raised out of data_received (Headers.get) instead of failing the dial."""
    served: list[bytes] = []

    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        served.append(head)
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        )
        hello = p.encode_message(p.Hello(p.VERSION, "fake", "", "", p.DEFAULT_WINDOW, {}))
        proof = f"{node_auth.REPLY}: {'0' * 64}\r\n".encode()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + b"Sec-WebSocket-Accept: %s\r\n%s\r\n" % (accept, proof * proofs)
            + binary_frame_header(len(hello), None)
            + hello
        )
        await reader.read()  # until the node closes
        writer.close()

    caplog.set_level(logging.INFO)
    server = await asyncio.start_server(impostor, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with cluster_nodes(redis_server.url, 1) as (one,):
            assert one.node is not None
            links = one.node.links
            links.sync({"fake": f"ws://127.0.0.1:{port}"}, "node1")
            await eventually(lambda: links.failures > 0, what="the dial to fail")
            assert served, "the node never dialled the impostor"
            assert "fake" not in links.links and links.get("fake") is None
            links.sync({}, "node1")
    finally:
        server.close()
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if m.startswith("node_link_up")], said
    assert [m for m in said if m.startswith("node_link_failed") and "node=fake" in m], said
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], said
