"""Recognising a molehill relay by its /healthz answer, not by an open port: real sockets, and
servers that answer something else, nothing, or too much."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from relay.probe import MAX_ANSWER, find_relay
from tests.support.apps import raw_server, silent_server
from tests.support.stack import running_relay


async def test_a_molehill_relay_is_recognised_with_where_its_tunnels_live():
    async with running_relay() as relay:
        found = await find_relay(relay.agents_url)
    assert found is not None
    assert found.agents_url == relay.agents_url and found.version == "1"
    assert found.tunnels == f"http://NAME.localhost:{relay.http_port}"


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n",  # a health check, not molehill's
        b"HTTP/1.1 200 OK\r\nX-Molehill-Relay: 1\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 503 No\r\nX-Molehill-Relay: 1\r\nContent-Length: 3\r\n\r\nok\n",
        b"HTTP/1.1 200 OK\r\nX-Molehill-Relay: one\r\nContent-Length: 3\r\n\r\nok\n",
        b"HTTP/1.1 200 OK\r\nX-Molehill-Relay 1\r\nContent-Length: 3\r\n\r\nok\n",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"\x00\xff" * 100,
    ],
    ids=["plain-ok", "wrong-body", "not-200", "bad-version", "broken-header", "ssh", "binary"],
)
async def test_other_servers_are_not_taken_for_a_relay(answer):
    async with raw_server() as server:
        server.response = answer
        assert await find_relay(f"ws://127.0.0.1:{server.port}", timeout=1.0) is None
        assert b"GET /healthz HTTP/1.1" in bytes(server.received)


async def test_a_server_that_never_answers_is_given_up_on():
    async with silent_server() as port:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await find_relay(f"ws://127.0.0.1:{port}", timeout=0.3) is None
        assert loop.time() - started < 2.0


@contextlib.asynccontextmanager
async def flooding_server() -> AsyncIterator[int]:
    """Answers a molehill-looking head, then a body that never ends."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = b"HTTP/1.1 200 OK\r\nX-Molehill-Relay: 1\r\n\r\nok\n"
        with contextlib.suppress(ConnectionError):
            writer.write(head + b"x" * (MAX_ANSWER * 64))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_a_flood_of_bytes_is_cut_at_the_cap_and_refused():
    async with flooding_server() as port:
        assert await find_relay(f"ws://127.0.0.1:{port}", timeout=2.0) is None


async def test_nothing_listening_and_urls_it_does_not_guess_at():
    async with raw_server() as server:
        closed = server.port
    assert await find_relay(f"ws://127.0.0.1:{closed}") is None
    for url in ("wss://127.0.0.1:7000", "http://127.0.0.1:7000", "ws://127.0.0.1", "nonsense"):
        assert await find_relay(url) is None
