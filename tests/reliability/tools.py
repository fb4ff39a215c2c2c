"""Small tools for the reliability tests: polling, raw downloads and a TCP proxy that can freeze."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from tests.support.stack import open_raw, raw_request, read_response
from tests.support.waiting import eventually

__all__ = ["eventually"]  # the reliability tests take it from here


async def get(port: int, host: str, path: str = "/", timeout: float = 10.0):
    """One GET on a fresh connection to 127.0.0.1:port; returns the RawResponse."""
    reader, writer = await open_raw(port)
    try:
        writer.write(raw_request(host, path, headers=[("Connection", "close")]))
        return await read_response(reader, timeout=timeout)
    finally:
        writer.close()


async def download(port: int, host: str, size: int, chunk: int = 1 << 20) -> int:
    """Download ``size`` bytes of /download and return how many arrived (all, or it raises)."""
    reader, writer = await open_raw(port)
    try:
        writer.write(raw_request(host, f"/download?size={size}", headers=[("Connection", "close")]))
        head = await read_response(reader, head_only=True, timeout=30)
        assert head.status == 200, head.head
        got = 0
        while got < size:
            piece = await reader.read(chunk)
            if not piece:
                break
            got += len(piece)
        assert got == size, f"download ended after {got} of {size} bytes"
        return got
    finally:
        writer.close()


async def drain_until_closed(reader: asyncio.StreamReader) -> str:
    """Read until the connection ends; say how it ended ("eof" or "reset")."""
    try:
        while await reader.read(1 << 20):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    return "eof"


@dataclass
class _Pipe:
    frozen: bool = False
    tasks: list[asyncio.Task] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


class FreezableProxy:
    """A TCP proxy on 127.0.0.1. ``freeze()`` makes every connection open at that moment go
    silent both ways, as if the network dropped its packets: bytes are read and discarded, and
    neither side sees a close. Connections made later are carried normally."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.pipes: list[_Pipe] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def freeze(self) -> int:
        """Freeze the connections open now; return how many."""
        live = [pipe for pipe in self.pipes if not pipe.frozen]
        for pipe in live:
            pipe.frozen = True
        return len(live)

    async def _handle(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            down_w.close()
            return
        pipe = _Pipe(writers=[down_w, up_w])
        self.pipes.append(pipe)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if not pipe.frozen:
                        dst.write(data)
                        await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            if not pipe.frozen:  # a frozen network passes no close either
                with contextlib.suppress(OSError):
                    dst.close()

        pipe.tasks = [
            asyncio.create_task(pump(down_r, up_w)),
            asyncio.create_task(pump(up_r, down_w)),
        ]

    async def __aenter__(self) -> FreezableProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in self.pipes:
            for task in pipe.tasks:
                task.cancel()
            for writer in pipe.writers:
                writer.transport.abort()
        await asyncio.gather(*(t for p in self.pipes for t in p.tasks), return_exceptions=True)


@asynccontextmanager
async def freezable_proxy(upstream_port: int) -> AsyncIterator[FreezableProxy]:
    async with FreezableProxy(upstream_port) as proxy:
        yield proxy
