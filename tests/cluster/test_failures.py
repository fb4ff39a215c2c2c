"""Failures of a cluster, for real: a node killed with SIGKILL (a `molehill relay --cluster`
process) and Redis killed and restarted empty. Data is checked by hash."""

from __future__ import annotations

import asyncio
import hashlib
import time
from contextlib import asynccontextmanager
from types import SimpleNamespace

from relay.agent import Agent, AgentSettings
from relay.events import AgentEvent, Reconnecting
from relay.wire import codec as p
from tests.cluster.nodes import SECRET, cluster_nodes
from tests.cluster.redis_proc import free_port
from tests.relay.helpers import agent_at, get, raw_agent, refusal
from tests.reliability.procs import RelayProcess, python_process
from tests.reliability.tools import drain_until_closed
from tests.support.apps import pattern_sha256
from tests.support.stack import agent_for, open_raw, raw_request
from tests.support.waiting import eventually

SIZE = 2_000_000


@asynccontextmanager
async def node_process(tmp_path, redis_url: str, node_id: str, lease: float):
    """`molehill relay --cluster ...` as the guide runs it, the secret from the environment."""
    port = free_port()
    args = ["-m", "tui.cli", "relay", "--http", "127.0.0.1:0", "--agents", f"127.0.0.1:{port}"]
    args += ["--lease", str(lease), "--cluster", redis_url, "--node-id", node_id]
    args += ["--node-url", f"ws://127.0.0.1:{port}"]
    env = {"MOLEHILL_CLUSTER_SECRET": SECRET}
    async with python_process(node_id, tmp_path, *args, cls=RelayProcess, env=env) as node:
        found = await node.line_matching(r"public HTTP\s+http://127\.0\.0\.1:(\d+)")
        node.http_port = int(found.group(1))
        node.agents_url = (await node.line_matching(r"agents\s+(ws://127\.0\.0\.1:\d+)")).group(1)
        await node.line_matching(rf"cluster\s+node {node_id} \(redis://127\.0\.0\.1")
        yield node


@asynccontextmanager
async def raw_agent_at(url: str, name: str):
    """A hand-driven agent of a node in another process; yields the node's answer."""
    async with raw_agent(SimpleNamespace(agents_url=url), name) as (_ws, answer):  # type: ignore[arg-type]
        yield answer


async def downloaded(port: int, name: str) -> str:
    got = await get(port, f"{name}.localhost:{port}", f"/download?size={SIZE}")
    assert got.status == 200, got.head
    return hashlib.sha256(got.body).hexdigest()


async def test_a_killed_node_s_agents_get_their_names_back_on_another_node(
    redis_server, tmp_path, app_port
):
    """kill -9 of node1 mid-download through node2: the download ends (closed or reset, no
    hang); its agent, started again on node2 with its resume token, gets its name at once and
    serves visitors within 5 s of the kill; another agent is refused the killed node's names
    until their lease ends, and may take them after."""
    lease = 3.0
    async with (
        node_process(tmp_path, redis_server.url, "node1", lease) as node1,
        cluster_nodes(redis_server.url, 1, first=2, lease=lease) as (node2,),
    ):
        async with agent_at(node1.agents_url, app_port, "victim", node1.http_port) as first:
            assert await downloaded(node1.http_port, "victim") == pattern_sha256(SIZE)
            await eventually(lambda: node2.routes.get("victim") is not None, what="a route")
            assert await downloaded(node2.http_port, "victim") == pattern_sha256(SIZE)
            resume = first.agent.resume
            reader, writer = await open_raw(node2.http_port)
            writer.write(
                raw_request(f"victim.localhost:{node2.http_port}", "/download?size=10000000000")
            )
            async with raw_agent_at(node1.agents_url, "orphan") as orphan:
                assert isinstance(orphan, p.Welcome)
                await reader.readexactly(1_000_000)  # mid-download, through node2
                node1.kill()
                killed = time.monotonic()
                async with asyncio.timeout(3.0):
                    assert await drain_until_closed(reader) in ("eof", "reset")
                writer.close()
                assert await node1.wait() == -9
                first.agent.stop()  # it would keep dialling the dead node
        async with agent_for(node2, app_port, "victim", resume=resume) as moved:
            assert moved.agent.name == "victim" and moved.agent.resume == resume
            assert await downloaded(node2.http_port, "victim") == pattern_sha256(SIZE)
            took = time.monotonic() - killed
        assert took < 5.0, f"the name moved in {took:.2f} s"

        refused = await refusal(node2, app_port, "orphan")
        assert refused.code in ("name_taken", "name_held")
        await asyncio.sleep(max(0.0, killed + lease + 0.5 - time.monotonic()))
        async with agent_for(node2, app_port, "orphan") as taken:
            assert await downloaded(node2.http_port, taken.agent.name) == pattern_sha256(SIZE)


async def test_without_redis_nodes_serve_their_tunnels_refuse_new_names_and_recover(
    redis_server, app_port
):
    async with (
        cluster_nodes(redis_server.url, 2, lease=3.0) as (one, two),
        agent_for(one, app_port, "steady") as steady,
    ):
        await eventually(lambda: two.routes.get("steady") is not None, what="a route")
        async with raw_agent(one, "blip") as (_ws, welcome):
            assert isinstance(welcome, p.Welcome)
        await eventually(lambda: "blip" in one.leases, what="node1 to hold 'blip'")
        redis_server.kill()
        # an agent whose connection blipped comes back to its node: it keeps its name ...
        async with raw_agent(one, "blip", resume=welcome.resume) as (_ws, back):
            assert isinstance(back, p.Welcome) and back.resume == welcome.resume
        # ... but no other agent gets a name the cluster cannot vouch for
        async with raw_agent(one, "blip") as (_ws, refused):
            assert isinstance(refused, p.Error) and refused.code == "cluster_unavailable"
        assert await downloaded(one.http_port, "steady") == pattern_sha256(SIZE)
        assert await downloaded(two.http_port, "steady") == pattern_sha256(SIZE)
        async with raw_agent(two, "newbie") as (_ws, refused):  # (an Agent would retry)
            assert isinstance(refused, p.Error) and refused.code == "cluster_unavailable"
        assert f"127.0.0.1:{redis_server.port}" in refused.message
        assert "tunnels already open keep working" in refused.message
        await asyncio.sleep(one.registry.renew_every * 1.5)  # renewals fail meanwhile
        assert "steady" in one.tunnels and steady.agent.state == "online"
        assert await downloaded(one.http_port, "steady") == pattern_sha256(SIZE)

        redis_server.start()  # the same port, an empty database
        client = redis_server.client()
        await eventually(
            lambda: client.hget("molehill:name:steady", "node") == "node1",
            timeout=one.registry.renew_every * 3,
            what="node1 to register 'steady' again",
        )
        refused = await refusal(two, app_port, "steady")
        assert refused.code == "name_taken"
        async with agent_for(two, app_port, "newbie") as newbie:
            assert await downloaded(two.http_port, newbie.agent.name) == pattern_sha256(SIZE)


async def test_an_agent_refused_while_redis_is_away_keeps_trying_and_comes_online(
    redis_server, app_port
):
    """cluster_unavailable says "not now": the agent retries with its backoff (and says why)
    instead of exiting, and is online soon after Redis is back."""
    async with cluster_nodes(redis_server.url, 2) as (one, _two):
        redis_server.kill()
        settings = AgentSettings(
            local_port=app_port, relay=one.agents_url, name="patient", backoff_max=0.5
        )
        events: list[AgentEvent] = []
        agent = Agent(settings, events.append)
        task = asyncio.create_task(agent.run())
        try:
            await eventually(
                lambda: sum(isinstance(e, Reconnecting) for e in events) >= 2,
                what="two retries while Redis is away",
            )
            assert not task.done() and agent.state == "connecting"
            retry = next(e for e in events if isinstance(e, Reconnecting))
            assert "tunnels already open keep working" in retry.reason
            redis_server.start()
            await asyncio.wait_for(agent.wait_online(), 15)
            assert agent.name == "patient"
            assert await downloaded(one.http_port, "patient") == pattern_sha256(SIZE)
        finally:
            agent.stop()
            await asyncio.wait({task}, timeout=5)
