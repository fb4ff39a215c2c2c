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


@asynccontextmanager
async def running_relay(**overrides: object) -> AsyncIterator[Relay]:
    async with Relay(relay_settings(**overrides)) as relay:
        yield relay


@asynccontextmanager
async def agent_for(
    relay: Relay, local_port: int, name: str = "", **overrides: object
) -> AsyncIterator[Tunnel]:
    settings = AgentSettings(local_port=local_port, relay=relay.agents_url, name=name)
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
    tunnel = Tunnel(relay, agent, task, events)
    try:
        yield tunnel
    finally:
        agent.stop()
        await asyncio.wait({task}, timeout=5)


@asynccontextmanager
async def tunnel_to(
    local_port: int, name: str = "app", **relay_overrides: object
) -> AsyncIterator[Tunnel]:
    async with running_relay(**relay_overrides) as relay, agent_for(relay, local_port, name) as t:
        yield t
