"""`molehill relay --cluster` node processes for fault tests (kill -9, SIGSTOP), on a port
given or free now (a node started again on its port is the same node answering again), and an
agent holding one name through several of them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from relay.agent import AgentSettings
from relay.agent.links import LinkedAgent
from relay.events import AgentEvent
from tests.cluster.nodes import SECRET
from tests.cluster.redis_proc import free_port
from tests.reliability.procs import RelayProcess, python_process

PING = (0.5, 2.0)  # the nodes' heartbeat (interval, timeout): failures are noticed in 2 s


@asynccontextmanager
async def node_proc(
    tmp_path,
    redis_url: str,
    node_id: str,
    port: int = 0,
    lease: float = 3.0,
    public_port: int = 8080,
) -> AsyncIterator[RelayProcess]:
    """A node as the guide starts one; every node gets the same public port (as behind one
    load balancer), so each prints the same public URL. Always SIGCONT then SIGKILL after."""
    port = port or free_port()
    args = ["-m", "tui.cli", "relay", "--http", "127.0.0.1:0", "--agents", f"127.0.0.1:{port}"]
    args += ["--lease", str(lease), "--cluster", redis_url, "--node-id", node_id]
    args += ["--node-url", f"ws://127.0.0.1:{port}", "--public-port", str(public_port)]
    args += ["--ping-interval", str(PING[0]), "--ping-timeout", str(PING[1])]
    env = {"MOLEHILL_CLUSTER_SECRET": SECRET}
    async with python_process(node_id, tmp_path, *args, cls=RelayProcess, env=env) as node:
        try:
            found = await node.line_matching(r"public HTTP\s+http://127\.0\.0\.1:(\d+)")
            node.http_port = int(found.group(1))
            agents = await node.line_matching(r"agents\s+(ws://127\.0\.0\.1:\d+)")
            node.agents_url = agents.group(1)
            await node.line_matching(rf"cluster\s+node {node_id} \(redis://127\.0\.0\.1")
            yield node
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.pid, signal.SIGCONT)  # a frozen node must be able to die


@asynccontextmanager
async def linked_agent(
    urls: list[str], app_port: int, name: str, **overrides: object
) -> AsyncIterator[tuple[LinkedAgent, list[AgentEvent], asyncio.Task[None]]]:
    """An agent with one link per URL (``--relay`` given once per URL), online."""
    settings = AgentSettings(
        local_port=app_port,
        relay=urls[0],
        more_relays=tuple(urls[1:]),
        name=name,
        backoff_max=0.5,
        connect_timeout=2.0,
    )
    for key, value in overrides.items():
        setattr(settings, key, value)
    events: list[AgentEvent] = []
    agent = LinkedAgent(settings, events.append)
    task = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.wait_online(), 10)
        yield agent, events, task
    finally:
        agent.stop()
        await asyncio.wait({task}, timeout=5)
