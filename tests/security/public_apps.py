"""Local apps for the relay's public-side security tests: an HTTP/1.1 server that records every
request head it parses and every connection it accepts, and can misbehave on purpose."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


def basic(credentials: str) -> tuple[str, str]:
    return ("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())


def header(head: bytes, name: str) -> list[str]:
    """Every value of header ``name`` in a raw head."""
    values = []
    for line in head.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name.lower().encode():
            values.append(value.strip().decode("latin-1"))
    return values


@dataclass
class App:
    """What the app saw; how it answers. Each answer's body names the app and the target."""

    name: str
    port: int = 0
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0
    early: bool = False  # answer as soon as a head is in, before reading its body
    extra: bytes = b""  # written right after every answer: a second answer nobody asked for
    delay: float = 0.0  # wait this long before answering

    def targets(self) -> list[str]:
        return [h.split(b" ", 2)[1].decode("latin-1") for h in self.heads]


def _answer(app: App, head: bytes) -> bytes:
    method, target = head.split(b" ", 2)[:2]
    body = f"{app.name} {method.decode()} {target.decode('latin-1')}".encode()
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body) + app.extra


@contextlib.asynccontextmanager
async def recording_app(name: str, **options: object) -> AsyncIterator[App]:
    app = App(name, **options)  # type: ignore[arg-type]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        app.connections += 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).lstrip(b"\r\n")
                if not head:
                    continue  # empty lines before a request line are allowed (RFC 9112 2.2)
                app.heads.append(head)
                lengths = header(head, "content-length")
                length = int(lengths[0]) if lengths else 0
                if not app.early:
                    await reader.readexactly(length)
                if app.delay:
                    await asyncio.sleep(app.delay)
                writer.write(_answer(app, head))
                await writer.drain()
                if app.early:
                    await reader.readexactly(length)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    app.port = server.sockets[0].getsockname()[1]
    try:
        yield app
    finally:
        server.close()


def abort_with_reset(writer: asyncio.StreamWriter) -> None:
    """Close a connection with a TCP RST (SO_LINGER 0), as a crashed or impatient peer does."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
