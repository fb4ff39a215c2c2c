"""Per-stream flow control: many streams share one agent fairly, a visitor who stops reading
stalls only their own stream with bounded memory, and every socket has Nagle turned off."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket

import httpx
import pytest

from relay.agent import LocalConnection
from relay.server.public import PublicConnection
from tests.support.apps import pattern_sha256
from tests.support.stack import (
    Tunnel,
    agent_for,
    open_raw,
    raw_request,
    read_response,
    running_relay,
    tunnel_to,
)
from tests.support.waiting import eventually

KB = 1024
HIGH_WATER = 64 * KB  # asyncio's default write buffer high-water mark
MAX_READ = 256 * KB  # the most one socket read can bring in


def client(t: Tunnel, **kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=t.base, headers={"Host": t.host}, timeout=30, **kw)


def nodelay(transport) -> bool:
    sock = transport.get_extra_info("socket")
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_50_concurrent_streams_over_one_agent(app_port):
    sizes = [100_000 + i * 20_011 for i in range(50)]
    async with (
        tunnel_to(app_port, "many") as t,
        client(t, limits=httpx.Limits(max_connections=60)) as c,
    ):
        peak = 0

        async def fetch(size: int) -> str:
            nonlocal peak
            digest = hashlib.sha256()
            async with c.stream("GET", f"/download?size={size}") as resp:
                assert resp.status_code == 200
                async for piece in resp.aiter_raw():
                    digest.update(piece)
                    peak = max(peak, len(t.agent.link.streams))
            return digest.hexdigest()

        digests = await asyncio.gather(*(fetch(size) for size in sizes))
        assert digests == [pattern_sha256(size) for size in sizes]
        assert len(t.relay.sessions) == 1  # one agent carried them all
        assert t.relay.requests == 50
        assert peak > 10  # they really ran side by side


async def test_a_client_that_stops_reading_stalls_only_its_own_stream(app_port):
    async with tunnel_to(app_port, "stall") as t, client(t) as c:
        window = t.relay.settings.window
        reader, writer = await open_raw(t.relay.http_port)
        writer.write(raw_request(t.host, "/download?size=500000000"))
        # ... and read nothing.

        def stalled_conn() -> PublicConnection | None:
            for conn in t.relay.public_connections:
                if conn.session is not None and conn.bytes_to_socket:
                    return conn
            return None

        await eventually(lambda: stalled_conn() is not None, what="the download to start")
        conn = stalled_conn()
        assert conn is not None
        await eventually(lambda: conn.writing_paused, what="the relay's socket to back up")
        local: LocalConnection = t.agent.link.streams[conn.sid]
        await eventually(lambda: local.reading_paused, what="the agent to stop reading the app")

        # The stream is stalled: nothing more moves ...
        moved = conn.bytes_to_socket
        await asyncio.sleep(0.3)
        assert conn.bytes_to_socket == moved
        assert moved < 100_000_000
        # ... and what it holds is bounded by the window, not by the body.
        relay_buffered = conn.transport.get_write_buffer_size() + sum(map(len, conn.held))
        assert relay_buffered <= window + 2 * HIGH_WATER, relay_buffered
        agent_buffered = local.transport.get_write_buffer_size() + sum(map(len, local.held))
        assert agent_buffered <= MAX_READ + HIGH_WATER, agent_buffered
        assert local.send_credit < MAX_READ

        # Meanwhile the same tunnel serves everyone else normally.
        for i in range(10):
            resp = await c.get(f"/echo/other/{i}")
            assert resp.status_code == 200
        resp = await c.get("/download?size=2000000")
        assert hashlib.sha256(resp.content).hexdigest() == pattern_sha256(2_000_000)
        assert conn.bytes_to_socket == moved

        # Reading again resumes the stalled stream.
        head = await read_response(reader, head_only=True)
        assert head.status == 200
        got = 0
        while got < 8_000_000:
            got += len(await reader.read(1 << 20))
        await eventually(lambda: conn.bytes_to_socket > moved + 4_000_000, what="resumption")
        writer.close()
        await eventually(lambda: conn.sid not in t.agent.link.streams, what="the stream to end")


async def test_a_client_that_stops_sending_stalls_only_its_upload(app_port):
    """The other direction: an app that stops reading an upload applies backpressure."""
    async with tunnel_to(app_port, "upstall") as t, client(t) as c:
        _, writer = await open_raw(t.relay.http_port)
        # /longpoll never reads the body: the app's socket fills, then the agent's credit stops.
        size = 200_000_000
        writer.write(
            raw_request(t.host, "/longpoll?seconds=30", "POST", [("Content-Length", str(size))])
        )
        block = b"u" * (1 << 20)

        async def pump() -> None:
            for _ in range(size // len(block)):
                writer.write(block)
                await writer.drain()

        pumping = asyncio.create_task(pump())
        try:
            await eventually(
                lambda: any(conn.reading_paused for conn in t.relay.public_connections),
                what="the relay to stop reading the uploader",
            )
            (conn,) = [conn for conn in t.relay.public_connections if conn.reading_paused]
            assert sum(map(len, conn.held)) <= MAX_READ + t.relay.settings.window
            # The relay runs out of credit as soon as a window is sent, which can be before the
            # agent (another task on a busy loop) has opened the stream.
            await eventually(
                lambda: conn.sid in t.agent.link.streams, what="the agent to open the stream"
            )
            local = t.agent.link.streams[conn.sid]
            assert local.transport.get_write_buffer_size() <= t.relay.settings.window + HIGH_WATER
            assert (await c.get("/echo/still-fine")).status_code == 200
            assert not pumping.done()
        finally:
            pumping.cancel()
            writer.close()


@contextlib.contextmanager
def unanswered_port():
    """A port whose accept queue is full: connecting to it hangs instead of failing."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_bytes_for_a_local_app_still_connecting_are_bounded_by_the_window():
    with unanswered_port() as port:
        async with running_relay() as relay, agent_for(relay, port, "connecting") as t:
            _, writer = await open_raw(relay.http_port)
            size = 20_000_000
            writer.write(raw_request(t.host, "/upload", "POST", [("Content-Length", str(size))]))
            block = b"u" * 100_000

            async def pump() -> None:
                for _ in range(size // len(block)):
                    writer.write(block)
                    await writer.drain()

            pumping = asyncio.create_task(pump())
            try:
                await eventually(lambda: bool(t.agent.link.streams), what="the stream to open")
                (local,) = t.agent.link.streams.values()
                await asyncio.sleep(0.5)
                if local.transport is not None:
                    pytest.skip("this platform accepted the connection; cannot stall a connect")
                early = sum(map(len, local.early or []))
                assert early <= t.agent.settings.window, f"{early} bytes buffered"
                (public,) = relay.public_connections
                assert public.reading_paused
            finally:
                pumping.cancel()
                writer.close()


async def test_nodelay_on_every_tunnel_socket(app_port):
    async with tunnel_to(app_port, "nodelay") as t:
        reader, writer = await open_raw(t.relay.http_port)
        writer.write(raw_request(t.host, "/"))
        assert (await read_response(reader)).status == 200
        # the keep-alive connection keeps its stream open on both sides
        (public,) = t.relay.public_connections
        local = t.agent.link.streams[public.sid]
        assert nodelay(public.transport), "relay: visitor socket"
        assert nodelay(local.transport), "agent: local app socket"
        assert nodelay(t.agent.link.transport), "agent: websocket to the relay"
        (session,) = t.relay.sessions
        assert nodelay(session.transport), "relay: websocket from the agent"
        writer.close()


async def test_tiny_windows_still_carry_big_bodies_intact(app_port):
    body = bytes(range(256)) * 4000  # ~1 MB, a thousand windows
    async with (
        running_relay(window=1024) as relay,
        agent_for(relay, app_port, "tiny", window=1024) as t,
        client(t) as c,
    ):
        resp = await c.post("/upload", content=body)
        assert resp.json() == {"sha256": hashlib.sha256(body).hexdigest(), "length": len(body)}
        resp = await c.get("/download?size=1000000")
        assert hashlib.sha256(resp.content).hexdigest() == pattern_sha256(1_000_000)
