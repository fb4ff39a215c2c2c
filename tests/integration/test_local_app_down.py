"""A local app that is down, or fails mid-way, is explained: the agent's record says what failed
(refused, timed out, reset, closed, a name that does not resolve), the tunnel's figures say since
when and how many requests it cost, and it clears with the first request the app answers.
All through a real relay and agent on loopback."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from relay.events import RequestRecord
from relay.stats import TunnelStats
from tests.support.stack import Tunnel, agent_for, open_raw, raw_request, running_relay
from tests.support.waiting import eventually

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def app(handler: Handler, port: int = 0) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", port)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def resets(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads the request head, then resets the connection (SO_LINGER 0: an RST, not a FIN)."""
    await reader.readuntil(b"\r\n\r\n")
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads the request head, then closes without a word."""
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


async def cuts_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Promises 100 bytes, sends 5, closes."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
    await writer.drain()
    writer.close()


async def answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    await writer.drain()
    writer.close()


def sleeps(delay: float) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await asyncio.sleep(delay)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nslept")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return handler


async def visit(t: Tunnel, path: str = "/x") -> bytes:
    """One request on its own connection; whatever came back before the relay closed."""
    reader, writer = await open_raw(t.relay.http_port)
    writer.write(raw_request(t.host, path, headers=[("Connection", "close")]))
    try:
        async with asyncio.timeout(10):
            return await reader.read()
    except ConnectionError:
        return b""
    finally:
        writer.close()


async def record_for(t: Tunnel, count: int = 1) -> RequestRecord:
    await eventually(lambda: len(t.records()) >= count, 5.0, f"{count} request records")
    return t.records()[count - 1]


async def test_nothing_listening_is_refused_and_clears_when_the_app_comes_back():
    port = closed_port()
    async with running_relay() as relay, agent_for(relay, port, "down") as t:
        stats = TunnelStats()
        t.agent.on_event = lambda e: (
            t.events.append(e),
            isinstance(e, RequestRecord) and stats.add(e),
        )
        for _ in range(2):
            assert (await visit(t)).startswith(b"HTTP/1.1 502 ")
        first = await record_for(t, 2)
        assert first.status == 502
        assert first.failure_kind == "refused"
        assert first.failure == f"local app refused the connection (127.0.0.1:{port})"
        assert first.app_ms is None and first.overhead_ms is None
        down = stats.snapshot().app_down
        assert down is not None and down.kind == "refused"
        assert (down.requests, down.got_502) == (2, 2)
        assert down.since == t.records()[0].time
        assert down.describe("12:01:03") == (
            f"local app refused the connection (127.0.0.1:{port}) since 12:01:03"
            " — 2 requests got 502"
        )
        async with app(answers, port):
            assert (await visit(t)).startswith(b"HTTP/1.1 200 ")
            back = await record_for(t, 3)
        assert back.status == 200 and back.failure == "" and back.failure_kind == ""
        assert stats.snapshot().app_down is None  # the first request it answered cleared it


async def test_app_that_resets_the_connection():
    async with app(resets) as port, running_relay() as relay, agent_for(relay, port, "rst") as t:
        await visit(t)
        record = await record_for(t)
    assert record.status == 0
    assert record.failure_kind == "reset"
    assert record.failure == f"local app reset the connection before answering (127.0.0.1:{port})"


async def test_app_that_closes_without_answering():
    async with app(hangs_up) as port, running_relay() as relay, agent_for(relay, port, "fin") as t:
        await visit(t)
        record = await record_for(t)
    assert (record.status, record.failure_kind) == (0, "closed")
    assert "closed the connection before answering" in record.failure


async def test_app_that_stops_mid_response():
    async with (
        app(cuts_short) as port,
        running_relay() as relay,
        agent_for(relay, port, "cut") as t,
    ):
        got = await visit(t)
        record = await record_for(t)
    assert got.startswith(b"HTTP/1.1 200 ")  # the visitor had the head and 5 bytes
    assert (record.status, record.failure_kind) == (200, "closed")
    assert f"closed the connection mid-response (127.0.0.1:{port})" in record.failure


async def test_app_that_never_accepts_times_out():
    # A backlog of 0, filled: the kernel drops further SYNs, so the agent's dial hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        try:
            async with (
                running_relay() as relay,
                agent_for(relay, port, "slow", connect_timeout=2.0) as t,
            ):
                got = await visit(t)
                record = await record_for(t)
        finally:
            for filler in fillers:
                filler.close()
    assert got.startswith(b"HTTP/1.1 502 ")
    assert (record.status, record.failure_kind) == (502, "timeout")
    assert record.failure == f"local app did not accept the connection within 2s (127.0.0.1:{port})"
    assert record.duration_ms >= 1900


async def test_host_name_that_does_not_resolve():
    async with (
        running_relay() as relay,
        agent_for(relay, 80, "dns", local_host="nosuch.invalid") as t,
    ):
        got = await visit(t)
        record = await record_for(t)
    assert got.startswith(b"HTTP/1.1 502 ")
    assert (record.status, record.failure_kind) == (502, "dns")
    assert record.failure.startswith("local app's host name does not resolve (nosuch.invalid:80")


async def test_app_time_and_tunnel_overhead_against_an_app_that_sleeps():
    delay = 0.2
    async with (
        app(sleeps(delay)) as port,
        running_relay() as relay,
        agent_for(relay, port, "zz") as t,
    ):
        reader, writer = await open_raw(relay.http_port)
        for _ in range(2):  # the second on the same connection: no dial to wait for
            writer.write(raw_request(t.host, "/nap"))
            await reader.readuntil(b"slept")
        first, second = await record_for(t, 1), await record_for(t, 2)
        writer.close()
    for record in (first, second):
        assert record.status == 200 and not record.failure
        assert record.app_ttfb_ms is not None and record.app_ms is not None
        assert record.overhead_ms is not None
        assert record.app_ttfb_ms >= delay * 1000
        assert record.app_ms >= record.app_ttfb_ms
        assert 0 <= record.overhead_ms < 100  # the dial, on loopback
        assert abs(record.duration_ms - (record.app_ms + record.overhead_ms)) < 0.01
    assert second.overhead_ms == 0.0  # the connection was up: the head went straight to the app
