"""`molehill relay --cluster` node processes for fault tests (kill -9, SIGSTOP), on a port
given or free now (a node started again on its port is the same node answering again), and an
agent holding one name through several of them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from relay.agent import AgentSettings
from relay.agent.links import LinkedAgent
from relay.events import AgentEvent
from tests.cluster.nodes import SECRET
from tests.cluster.redis_proc import free_port
from tests.relay.helpers import get, metrics_dict
from tests.reliability.procs import RelayProcess, python_process
from tests.support.apps import pattern_sha256

PING = (0.5, 2.0)  # the nodes' heartbeat (interval, timeout): failures are noticed in 2 s

SIZE = 200_000
BOUND = PING[1] + 3.0  # every visitor request ends within this: an answer or a clean error


async def visit(port: int, name: str) -> str:
    """One request through the node at ``port``: "ok", or how it failed (never waits past
    BOUND: "hang")."""
    try:
        async with asyncio.timeout(BOUND):
            got = await get(port, f"{name}.localhost:{port}", f"/download?size={SIZE}")
    except TimeoutError:
        return "hang"
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        return f"closed ({type(exc).__name__})"
    if got.status != 200:
        return f"status {got.status}"
    return "ok" if hashlib.sha256(got.body).hexdigest() == pattern_sha256(SIZE) else "corrupt"


async def served(port: int, name: str, timeout: float = 5.0) -> None:
    """Wait until a visitor of the node at ``port`` is served ``name`` (its directory learns
    of a name by pub/sub, a moment after the name is taken)."""
    deadline = time.monotonic() + timeout
    while (outcome := await visit(port, name)) != "ok":
        assert time.monotonic() < deadline, f"{name} through port {port}: {outcome}"
        await asyncio.sleep(0.05)


async def forwarded(node) -> float:
    """Streams this node sent to other nodes (its /metrics, over HTTP)."""
    got = await get(node.agents_port, f"127.0.0.1:{node.agents_port}", "/metrics")
    values = metrics_dict(got.body.decode())
    return sum(v for k, v in values.items() if k.startswith("molehill_cluster_streams_forwarded"))


@asynccontextmanager
async def node_proc(
    tmp_path,
    redis_url: str,
    node_id: str,
    port: int = 0,
    lease: float = 3.0,
    public_port: int = 8080,
    config: str = "",
    host: str = "127.0.0.1",
) -> AsyncIterator[RelayProcess]:
    """A node as the guide starts one; every node gets the same public port (as behind one
    load balancer), so each prints the same public URL. Always SIGCONT then SIGKILL after.
    ``config``: the text of a relay.toml to start it with (the flags override it).
    ``host``: the loopback address its agent listener binds (127.0.0.2: a second machine's)."""
    port = port or free_port()
    args = ["-m", "tui.cli", "relay", "--http", "127.0.0.1:0", "--agents", f"{host}:{port}"]
    if config:
        path = tmp_path / f"{node_id}-{time.monotonic_ns()}.toml"
        path.write_text(config)
        args += ["--config", str(path)]
    args += ["--lease", str(lease), "--cluster", redis_url, "--node-id", node_id]
    args += ["--node-url", f"ws://{host}:{port}", "--public-port", str(public_port)]
    args += ["--ping-interval", str(PING[0]), "--ping-timeout", str(PING[1])]
    env = {"MOLEHILL_CLUSTER_SECRET": SECRET}
    async with python_process(node_id, tmp_path, *args, cls=RelayProcess, env=env) as node:
        try:
            found = await node.line_matching(r"public HTTP\s+http://127\.0\.0\.1:(\d+)")
            node.http_port = int(found.group(1))
            agents = await node.line_matching(r"agents\s+(ws://127\.0\.0\.\d+:\d+)")
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
