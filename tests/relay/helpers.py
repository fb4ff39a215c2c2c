"""Helpers of the relay tests: tokens, refusals, raw visitors and raw agents, watched servers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from websockets.asyncio.client import connect as ws_connect

from relay.agent import Agent, AgentSettings, Refused
from relay.events import Reconnecting
from relay.server import Relay
from relay.server.access import TokenEntry, new_token, token_hash
from relay.wire import codec as p
from tests.support.stack import RawResponse, agent_for, raw_request, read_response


@dataclass
class Token:
    """A token as its holder has it (``secret``) and as the relay keeps it (``entry``)."""

    secret: str
    entry: TokenEntry


def make_token(label: str, **entry_fields: object) -> Token:
    secret = new_token()
    return Token(secret, TokenEntry(label=label, hash=token_hash(secret), **entry_fields))


async def refusal(relay: Relay, local_port: int, name: str = "", **overrides: object) -> Refused:
    """Start an agent that the relay must refuse; return the refusal."""
    with pytest.raises(Refused) as info:
        async with agent_for(relay, local_port, name, **overrides):
            pass
    return info.value


def agent_at(url: str, local_port: int, name: str = "", http_port: int = 0, **overrides: object):
    """agent_for, for a relay known by its agents' URL (wss://, or a relay in another process)."""
    remote = SimpleNamespace(agents_url=url, http_port=http_port)
    return agent_for(remote, local_port, name, **overrides)  # type: ignore[arg-type]


async def get(
    port: int,
    host: str,
    path: str = "/",
    headers: list[tuple[str, str]] | None = None,
    *,
    source: str | None = None,
) -> RawResponse:
    """One request on a new connection to the relay's public port (from ``source`` if given)."""
    reader, writer = await open_from(port, source)
    try:
        writer.write(raw_request(host, path, headers=headers))
        return await read_response(reader)
    finally:
        writer.close()


async def open_from(
    port: int, source: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to 127.0.0.1:port, from another loopback address if ``source`` says so."""
    local = (source, 0) if source else None
    return await asyncio.open_connection("127.0.0.1", port, local_addr=local)


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Read until the peer closes (EOF or reset); fail if it stays open ``seconds``."""
    data = bytearray()
    async with asyncio.timeout(seconds):
        try:
            while chunk := await reader.read(65536):
                data += chunk
        except ConnectionResetError:
            pass
    return bytes(data)


# -- raw agents ---------------------------------------------------------------------------------


async def recv_frames(ws, timeout: float = 3.0) -> list[p.Frame]:
    async with asyncio.timeout(timeout):
        return p.decode_all(await ws.recv())


async def first_frame_of(ws, kind: type, timeout: float = 3.0):
    """Skip pings (and anything else) until a frame of ``kind`` arrives."""
    async with asyncio.timeout(timeout):
        while True:
            for frame in await recv_frames(ws, timeout):
                if isinstance(frame, kind):
                    return frame


@contextlib.asynccontextmanager
async def raw_agent(
    relay: Relay,
    name: str,
    token: str = "",
    resume: str = "",
    options: dict | None = None,
    **connect: object,
) -> AsyncIterator[tuple[object, p.Frame]]:
    """A hand-driven agent: yields its websocket and the relay's answer to its HELLO."""
    async with ws_connect(relay.agents_url, **connect) as ws:
        hello = p.Hello(p.VERSION, name, token, resume, p.DEFAULT_WINDOW, options or {})
        await ws.send(p.encode_message(hello))
        answer = await first_frame_of(ws, (p.Welcome, p.Error))
        yield ws, answer


def metrics_dict(text: str) -> dict[str, float]:
    """Prometheus text exposition as {'name{labels}': value}."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


async def first_retry_reason(url: str, port: int = 9) -> str:
    """Start an agent at ``url``; return the reason of its first retry."""
    events: list = []
    agent = Agent(AgentSettings(port, relay=url, connect_timeout=2.0), events.append)
    task = asyncio.create_task(agent.run())
    try:
        async with asyncio.timeout(5):
            while not any(isinstance(e, Reconnecting) for e in events):
                await asyncio.sleep(0.02)
    finally:
        agent.stop()
        await asyncio.wait({task}, timeout=3)
    return next(e for e in events if isinstance(e, Reconnecting)).reason
