"""A node frozen with SIGSTOP mid-traffic, then thawed with SIGCONT (issue 16, "Tests"): node
processes and a real redis-server; the frozen node is always sent SIGCONT, then SIGKILL, in
teardown (tests/cluster/node_procs.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from relay.agent import Agent, AgentSettings
from tests.cluster.node_procs import PING, forwarded, linked_agent, node_proc, served, visit
from tests.support.waiting import eventually

# What a visitor waits at most while a node is frozen: the node links' heartbeat timeout
# (PING[1]), a heartbeat period for the check to run, and a second for the answer.
FROZEN_BOUND = PING[1] + PING[0] + 1.0


async def test_a_frozen_node_s_two_link_agent_keeps_serving_through_the_other(
    redis_server, tmp_path, app_port
):
    """SIGSTOP of node1, which holds one of the agent's two links and is the first holder:
    node2's visitors never notice; node3's forwarded ones end within FROZEN_BOUND (an answer
    or a clean error) and are served through node2 after that; node1 is dropped from the
    name's holders when its node key expires. SIGCONT: the agent gets its link to node1 back."""
    async with (
        node_proc(tmp_path, redis_server.url, "node1") as node1,
        node_proc(tmp_path, redis_server.url, "node2") as node2,
        node_proc(tmp_path, redis_server.url, "node3") as node3,
        linked_agent([node1.agents_url, node2.agents_url], app_port, "steady") as (agent, _, _),
    ):
        await eventually(lambda: len(agent.up) == 2, what="both links up")
        client = redis_server.client()
        assert client.hget("molehill:name:steady", "nodes") == "node1 node2"
        await served(node3.http_port, "steady")
        log: dict[int, list[tuple[float, float, str]]] = {node2.http_port: [], node3.http_port: []}
        stop = asyncio.Event()

        async def traffic(port: int) -> None:
            while not stop.is_set():
                started = time.monotonic()
                outcome = await visit(port, "steady")
                log[port].append((started, time.monotonic(), outcome))

        loops = [asyncio.create_task(traffic(port)) for port in log for _ in range(2)]
        await asyncio.sleep(1.0)
        os.kill(node1.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        await eventually(lambda: len(agent.up) == 1, timeout=5, what="the agent to notice")
        noticed = time.monotonic() - frozen
        await asyncio.sleep(FROZEN_BOUND + 1.0)
        stop.set()
        await asyncio.gather(*loops)

        every = [entry for entries in log.values() for entry in entries]
        assert all(end - start < FROZEN_BOUND for start, end, _ in every), max(
            end - start for start, end, _ in every
        )
        assert all(o == "ok" for _, _, o in log[node2.http_port]), log[node2.http_port]
        through3 = log[node3.http_port]
        assert {o for _, _, o in through3} <= {"ok", "status 503", "closed (IncompleteReadError)"}
        late = [o for start, _, o in through3 if start > frozen + FROZEN_BOUND]
        assert late and all(o == "ok" for o in late), through3
        ok_ends = [end for start, end, o in through3 if start > frozen and o == "ok"]
        print(f"agent noticed in {noticed:.2f} s; node3 served again {ok_ends[0] - frozen:.2f} s")
        await eventually(
            lambda: client.hget("molehill:name:steady", "nodes") == "node2",
            timeout=10,
            what="node1 dropped from the holders once its node key expired",
        )
        assert agent.name == "steady"

        os.kill(node1.pid, signal.SIGCONT)
        await eventually(lambda: len(agent.up) == 2, timeout=15, what="the link to node1 back")
        assert set(client.hget("molehill:name:steady", "nodes").split()) == {"node1", "node2"}
        assert await visit(node1.http_port, "steady") == "ok"
        assert await visit(node3.http_port, "steady") == "ok"


async def test_a_thawed_node_finds_it_lost_its_name_and_never_serves_it_again(
    redis_server, tmp_path, app_port
):
    """A one-link agent on node1; node1 frozen: the agent notices through the heartbeat and
    moves to node2 with its resume token (as through a load balancer); SIGCONT: node1 drops
    the name (its renewal finds node2 holding it: lease_lost; or, first, it sees the agent's
    connection closed: tunnel_offline, and its hold is refused, the name being node2's) and
    stops serving it: its visitors are forwarded to node2; Redis never lists two holders."""
    async with (
        node_proc(tmp_path, redis_server.url, "node1") as node1,
        node_proc(tmp_path, redis_server.url, "node2") as node2,
    ):
        settings = AgentSettings(app_port, relay=node1.agents_url, name="solo", backoff_max=0.5)
        first = Agent(settings)
        task = asyncio.create_task(first.run())
        await asyncio.wait_for(first.wait_online(), 10)
        client = redis_server.client()
        await served(node2.http_port, "solo")
        os.kill(node1.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            await eventually(lambda: first.state != "online", timeout=5, what="heartbeat")
            noticed = time.monotonic() - frozen
            assert noticed < PING[1] + PING[0], noticed
            first.stop()
            await asyncio.wait({task}, timeout=5)
            moved = Agent(
                AgentSettings(app_port, relay=node2.agents_url, name="solo", resume=first.resume)
            )
            moved_task = asyncio.create_task(moved.run())
            await asyncio.wait_for(moved.wait_online(), 10)
            assert moved.name == "solo"
            assert client.hget("molehill:name:solo", "nodes") == "node2"
            assert await visit(node2.http_port, "solo") == "ok"
        finally:
            os.kill(node1.pid, signal.SIGCONT)
        try:
            await node1.wait_for(
                lambda: (
                    "lease_lost name=solo" in node1.stderr()
                    or "tunnel_offline name=solo" in node1.stderr()
                ),
                what="node1 to drop 'solo'",
            )
            # node1 links to node2 again (node2 dropped the link while node1 was frozen):
            # meanwhile its visitors get the clean "offline" page (503), never node1's tunnel
            thawed = time.monotonic()
            while (outcome := await visit(node1.http_port, "solo")) != "ok":
                assert outcome == "status 503" and time.monotonic() - thawed < 5.0, outcome
                await asyncio.sleep(0.05)
            print(f"node1 forwards 'solo' to node2 {time.monotonic() - thawed:.2f} s after")
            before = await forwarded(node1)
            for _ in range(4):
                assert await visit(node1.http_port, "solo") == "ok"
            assert await forwarded(node1) == before + 4  # served by node2's agent, not node1
            assert client.hget("molehill:name:solo", "nodes") == "node2"
            await asyncio.sleep(2.0)  # a few renewals of node1 later: still node2's alone
            assert client.hget("molehill:name:solo", "nodes") == "node2"
        finally:
            moved.stop()
            await asyncio.wait({moved_task}, timeout=5)
