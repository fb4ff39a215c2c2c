"""`molehill relay cluster status` against real nodes and a real redis-server: nodes alive,
a node killed with SIGKILL seen as gone (its names held), a node stopped on purpose, bad input."""

from __future__ import annotations

import asyncio
import json
import time

from tests.cluster.nodes import cluster_nodes
from tests.cluster.redis_proc import free_port
from tests.cluster.test_failures import node_process
from tests.relay.helpers import agent_at, raw_agent
from tests.support.cli import run_molehill
from tests.support.stack import agent_for
from tests.support.waiting import eventually


async def status(redis_url: str) -> dict:
    done = await run_molehill("relay", "cluster", "status", "--cluster", redis_url, "--json")
    assert done.code == 0, done.err
    return json.loads(done.out)


def by_id(report: dict) -> dict[str, dict]:
    return {node["id"]: node for node in report["nodes"]}


def names(node: dict) -> dict[str, str]:
    return {tunnel["name"]: tunnel["state"] for tunnel in node["tunnels"]}


async def test_status_lists_nodes_and_their_tunnels_and_sees_a_killed_node_go(
    redis_server, tmp_path, app_port
):
    # Renewals every 5 s: a dead node's key ends 15 s after its last renewal, its names (30 s)
    # later; in between they read as held for an agent that may come back elsewhere.
    lease = 30.0
    async with (
        node_process(tmp_path, redis_server.url, "node1", lease) as node1,
        cluster_nodes(redis_server.url, 2, first=2, lease=lease) as (node2, node3),
        agent_at(node1.agents_url, app_port, "victim", node1.http_port) as victim,
        agent_for(node2, app_port, "steady"),
    ):
        async with raw_agent(node3, "brief") as (_ws, _welcome):
            pass  # lost without a goodbye: its name is held for it
        await eventually(lambda: "brief" in node3.leases, what="node3 to hold 'brief'")
        report = await status(redis_server.url)
        nodes = by_id(report)
        assert set(nodes) == {"node1", "node2", "node3"}
        assert all(node["state"] == "alive" for node in nodes.values()), nodes
        assert nodes["node1"]["url"] == node1.agents_url
        assert nodes["node1"]["last_seen"] < 10.0  # renewed every 5 s
        assert names(nodes["node1"]) == {"victim": "live"}
        assert names(nodes["node2"]) == {"steady": "live"}
        assert names(nodes["node3"]) == {"brief": "held"}
        assert report["redis"] == redis_server.url

        text = await run_molehill("relay", "cluster", "status", "--cluster", redis_server.url)
        assert text.code == 0, text.err
        assert "3 nodes (3 alive), 3 tunnels" in text.out
        assert any(line.split()[:2] == ["node1", "alive"] for line in text.out.splitlines())

        node1.kill()
        killed = time.monotonic()
        assert await node1.wait() == -9
        victim.agent.stop()  # it would dial the dead node again and again

        async def node1_gone() -> bool:
            return by_id(await status(redis_server.url))["node1"]["state"] == "gone"

        while not await node1_gone():
            assert time.monotonic() - killed < 20, "node1 still reads as alive 20 s on"
            await asyncio.sleep(0.5)  # each look starts a process: not in a busy loop
        nodes = by_id(await status(redis_server.url))
        assert names(nodes["node1"]) == {"victim": "held (node gone)"}
        assert nodes["node1"]["last_seen"] >= 1.0
        assert nodes["node2"]["state"] == "alive"
    # node2 and node3 stopped on purpose
    nodes = by_id(await status(redis_server.url))
    assert nodes["node2"]["state"] == nodes["node3"]["state"] == "stopped"
    assert nodes["node1"]["state"] == "gone"


async def test_status_says_what_is_wrong(redis_server):
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    done = await run_molehill("relay", "cluster", "status", "--cluster", nowhere)
    assert done.code == 1
    assert f"cannot read the cluster's Redis at {nowhere}" in done.err
    done = await run_molehill("relay", "cluster", "status", env={"MOLEHILL_CLUSTER": ""})
    assert done.code == 2 and "give --cluster redis://HOST:PORT/DB" in done.err
    done = await run_molehill("relay", "cluster", "status", "--cluster", redis_server.url)
    assert done.code == 0 and "0 nodes (0 alive), 0 tunnels" in done.out
    assert "no node has registered in this Redis" in done.out
