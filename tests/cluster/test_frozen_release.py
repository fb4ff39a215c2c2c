"""Visitors of a node that forwards to a node that freezes (SIGSTOP) or dies (kill -9)
(issue 16): their connections are released as they close, so the node's per-address count
stays at what they hold open and nobody gets 429. Node processes and a real redis-server; a
frozen node is always sent SIGCONT, then SIGKILL, in teardown (tests/cluster/node_procs.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from tests.cluster.node_procs import PING, linked_agent, node_proc, served, visit
from tests.relay.helpers import get, metrics_dict
from tests.support.waiting import eventually

FROZEN_BOUND = PING[1] + PING[0] + 1.0  # as in test_sigstop: the link is dead by then
LIMIT = 16  # node3's connections_per_ip: hundreds of requests go through it meanwhile
LOOPS = 2  # visitors, each one request at a time on a new connection


async def public_connections(node) -> float:
    """The visitor connections the node holds open (its /metrics, over HTTP)."""
    got = await get(node.agents_port, f"127.0.0.1:{node.agents_port}", "/metrics")
    values = metrics_dict(got.body.decode())
    return sum(v for k, v in values.items() if k.startswith("molehill_public_connections"))


@pytest.mark.parametrize("fault", [signal.SIGSTOP, signal.SIGKILL], ids=["sigstop", "kill9"])
async def test_a_forwarding_node_releases_its_visitors_when_the_first_holder_fails(
    redis_server, tmp_path, app_port, fault
):
    """node1 (the first holder, to which node3 forwards) frozen or killed mid-traffic: node3's
    visitors get answers or the clean 503 of a lost stream, never 429; sampled during the
    fault and after it, node3 holds open no more connections than its visitors."""
    limits = f"[limits]\nconnections_per_ip = {LIMIT}\n"
    async with (
        node_proc(tmp_path, redis_server.url, "node1") as node1,
        node_proc(tmp_path, redis_server.url, "node2") as node2,
        node_proc(tmp_path, redis_server.url, "node3", config=limits) as node3,
        linked_agent([node1.agents_url, node2.agents_url], app_port, "steady") as (agent, _, _),
    ):
        await eventually(lambda: len(agent.up) == 2, what="both links up")
        assert redis_server.client().hget("molehill:name:steady", "nodes") == "node1 node2"
        await served(node3.http_port, "steady")
        outcomes: list[str] = []
        stop = asyncio.Event()

        async def traffic() -> None:
            while not stop.is_set():
                outcomes.append(await visit(node3.http_port, "steady"))

        loops = [asyncio.create_task(traffic()) for _ in range(LOOPS)]
        await asyncio.sleep(1.0)
        before = len(outcomes)
        os.kill(node1.pid, fault)
        faulted = time.monotonic()
        held: list[float] = []  # node3's open visitor connections, every 0.25 s
        try:
            while time.monotonic() - faulted < FROZEN_BOUND + 1.0:
                held.append(await public_connections(node3))
                await asyncio.sleep(0.25)
        finally:
            stop.set()
            await asyncio.gather(*loops)
        assert "status 429" not in outcomes, outcomes
        assert set(outcomes) <= {"ok", "status 503", "closed (IncompleteReadError)"}, outcomes
        assert before > LIMIT and len(outcomes) - before > LIMIT  # enough to fill the limit
        assert outcomes[-1] == "ok"  # served through node2 by the end
        # Each visitor holds one connection (and one just closed may not be seen closed yet);
        # a leak grows past LIMIT // 2 within a second.
        assert max(held) <= LIMIT // 2, held
        deadline = time.monotonic() + 2.0
        while (left := await public_connections(node3)) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert left == 0, left
        print(f"{len(outcomes)} visits, {outcomes.count('status 503')} got 503; held {held}")
