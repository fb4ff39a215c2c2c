"""A relay and an agent on loopback (ports chosen by the OS), as async context managers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from relay.agent import Agent, AgentSettings
from relay.events import AgentEvent, RequestRecord
from relay.server import Relay, RelaySettings


def relay_settings(**overrides: object) -> RelaySettings:
    settings = RelaySettings(http_port=0, agents_port=0, lease=5.0)
    for key, value in overrides.items():
        setattr(settings, key, value)
    return settings


@dataclass
class Tunnel:
    relay: Relay
    agent: Agent
    task: asyncio.Task
    events: list[AgentEvent] = field(default_factory=list)

    @property
    def host(self) -> str:
        """The Host header that selects this tunnel."""
        return f"{self.agent.name}.localhost:{self.relay.http_port}"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.relay.http_port}"

    def records(self) -> list[RequestRecord]:
        return [e for e in self.events if isinstance(e, RequestRecord)]


@dataclass
class RawResponse:
    """One response read off a raw socket."""

    status: int
    head: bytes
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


async def open_raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A plain TCP connection to 127.0.0.1:port (the relay's public port, usually)."""
    return await asyncio.open_connection("127.0.0.1", port)


def raw_request(
    host: str,
    path: str = "/",
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
) -> bytes:
    """A request head (and body, with Content-Length) as bytes."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers or []]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


async def read_response(
    reader: asyncio.StreamReader, *, head_only: bool = False, timeout: float = 10.0
) -> RawResponse:
    """Read one response: Content-Length, chunked (decoded) or until close bodies."""
    async with asyncio.timeout(timeout):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:]]
        response = RawResponse(status, head, headers, b"")  # type: ignore[arg-type]
        length = response.header("Content-Length")
        if head_only or status in (204, 304) or 100 <= status < 200:
            return response
        if (response.header("Transfer-Encoding") or "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    break
                body += await reader.readexactly(size)
                await reader.readexactly(2)
            response.body = bytes(body)
        elif length is not None:
            response.body = await reader.readexactly(int(length))
        else:
            response.body = await reader.read()
        return response


async def lose_connection(tunnel: Tunnel) -> None:
    """End ``tunnel``'s agent as a crash or a cut network would: its connection is aborted, no
    GOAWAY reaches the relay, which then holds the name for the lease. (A deliberate
    ``agent.stop()`` frees the name at once.)"""
    link = tunnel.agent.link
    assert link is not None and link.transport is not None, "the agent is not connected"
    link.transport.abort()  # what the relay sees of kill -9: the TCP connection is gone
    tunnel.agent.stop()  # and the agent does not come back (its closing link sends nothing)
    await asyncio.wait({tunnel.task}, timeout=5)


@asynccontextmanager
async def running_relay(**overrides: object) -> AsyncIterator[Relay]:
    async with Relay(relay_settings(**overrides)) as relay:
        yield relay


@asynccontextmanager
async def agent_for(
    relay: Relay, local_port: int, name: str = "", **overrides: object
) -> AsyncIterator[Tunnel]:
    async with agent_via(relay, relay.agents_url, local_port, name, **overrides) as tunnel:
        yield tunnel


@asynccontextmanager
async def tunnel_to(
    local_port: int, name: str = "app", **relay_overrides: object
) -> AsyncIterator[Tunnel]:
    async with running_relay(**relay_overrides) as relay, agent_for(relay, local_port, name) as t:
        yield t


@asynccontextmanager
async def agent_via(
    relay: Relay, url: str, local_port: int, name: str = "", **overrides: object
) -> AsyncIterator[Tunnel]:
    """Like ``agent_for``, but the agent dials ``url`` (a proxy in front of ``relay``)."""
    settings = AgentSettings(local_port=local_port, relay=url, name=name)
    for key, value in overrides.items():
        setattr(settings, key, value)
    events: list[AgentEvent] = []
    agent = Agent(settings, events.append)
    task = asyncio.create_task(agent.run())
    waiter = asyncio.create_task(agent.wait_online())
    done, _ = await asyncio.wait({task, waiter}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        waiter.cancel()
        if task.done():
            task.result()  # raises the refusal
        raise TimeoutError("agent did not come online")
    try:
        yield Tunnel(relay, agent, task, events)
    finally:
        agent.stop()
        await asyncio.wait({task}, timeout=5)
