"""TCP tunnel test helpers: a port range for the relay, local TCP services, a tunnel's port."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from relay.server.tcp_ports import PortRange
from tests.support.stack import Tunnel

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def port_block(size: int = 50) -> PortRange:
    """A block of ports below Linux's ephemeral range (32768+), so the OS hands none of it out;
    the relay tries others in the block if one is busy."""
    first = random.randrange(21000, 29000, size)
    return PortRange(first, first + size - 1)


def public_port(tunnel: Tunnel) -> int:
    url = urlsplit(tunnel.agent.url)
    assert url.scheme == "tcp", tunnel.agent.url
    assert url.port is not None
    return url.port


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo until the client half-closes, then say how many bytes came and close."""
    total = 0
    try:
        while data := await reader.read(65536):
            total += len(data)
            writer.write(data)
            await writer.drain()
        writer.write(f"\nEOF after {total}\n".encode())
        await writer.drain()
    except ConnectionError:  # the tunnel reset the connection: nothing more to say
        pass
    writer.close()


@asynccontextmanager
async def local_service(handler: Handler = echo) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
