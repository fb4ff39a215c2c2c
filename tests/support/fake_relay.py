"""A hostile relay for the agent's tests: the real websockets server on loopback, real wire
frames, and whatever the test tells it to say (tests/security/test_hostile_relay*.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from relay.wire import codec as p


def welcome(url: str = "http://pay.example.test", name: str = "pay", **fields: object) -> p.Welcome:
    """A WELCOME as a molehill relay sends it, unless ``fields`` say otherwise."""
    values: dict[str, object] = {
        "name": name,
        "url": url,
        "resume": "r3sume",
        "lease": 30.0,
        "ping_interval": 30.0,
        "window": p.DEFAULT_WINDOW,
    }
    values.update(fields)
    return p.Welcome(**values)  # type: ignore[arg-type]


@dataclass
class Agentside:
    """The relay's end of one agent's websocket."""

    ws: ServerConnection
    hello: p.Hello
    received: list[p.Frame] = field(default_factory=list)

    async def send(self, *frames: p.Frame) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(p.encode_message(*frames))

    async def send_raw(self, message: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(message)

    async def frames(self, timeout: float = 5.0) -> list[p.Frame]:
        """The frames of the agent's next message (pings answered and left out)."""
        while True:
            async with asyncio.timeout(timeout):
                frames = p.decode_all(await self.ws.recv())
            pings = [f for f in frames if isinstance(f, p.Ping)]
            if pings:
                await self.send(*(p.Pong(f.payload) for f in pings))
            rest = [f for f in frames if not isinstance(f, p.Ping)]
            self.received += rest
            if rest:
                return rest

    async def until_closed(self, timeout: float = 10.0) -> None:
        """Read (answering pings) until the agent closes the websocket."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.frames(timeout)


Script = Callable[[Agentside], Awaitable[None]]


@dataclass
class FakeRelay:
    port: int
    sessions: list[Agentside]
    errors: list[BaseException]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@asynccontextmanager
async def fake_relay(script: Script) -> AsyncIterator[FakeRelay]:
    """A relay on a loopback port that reads each agent's HELLO and then runs ``script``."""
    sessions: list[Agentside] = []
    errors: list[BaseException] = []

    async def handler(ws: ServerConnection) -> None:
        try:
            (hello,) = p.decode_all(await ws.recv())
            assert isinstance(hello, p.Hello)
            side = Agentside(ws, hello)
            sessions.append(side)
            await script(side)
        except ConnectionClosed:
            pass
        except BaseException as exc:  # a broken test script: say so, not hang
            errors.append(exc)
            raise

    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]  # type: ignore[index]
        yield FakeRelay(port, sessions, errors)
