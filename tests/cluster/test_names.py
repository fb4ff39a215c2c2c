"""Tunnel names shared by relay nodes through a real redis-server: one holder per name across
the cluster, resume tokens honoured on any node, names released on purpose free everywhere, a
node that lost a name stops serving it, and two agents racing for a name: exactly one wins."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from relay.agent import Refused
from relay.events import Reconnecting
from relay.server import Relay, RelayConfigError
from relay.wire import codec as p
from tests.cluster.nodes import cluster_nodes, node_settings
from tests.cluster.redis_proc import free_port
from tests.relay.helpers import get, raw_agent, refusal
from tests.support.apps import pattern_sha256
from tests.support.stack import agent_for
from tests.support.waiting import eventually


async def test_a_name_held_on_one_node_is_refused_on_every_other(redis_server, app_port):
    async with (
        cluster_nodes(redis_server.url, 3) as (one, two, three),
        agent_for(one, app_port, "web") as tunnel,
    ):
        size = 3_000_000
        got = await get(one.http_port, tunnel.host, f"/download?size={size}")
        assert got.status == 200
        assert hashlib.sha256(got.body).hexdigest() == pattern_sha256(size)
        for other in (two, three):
            refused = await refusal(other, app_port, "web")
            assert refused.code == "name_taken"
            assert "node1" in refused.message and "--subdomain" in refused.message
        record = redis_server.client().hgetall("molehill:name:web")
        assert record["node"] == "node1" and record["state"] == "live"
        assert tunnel.agent.resume not in record.values()  # only its digest is kept


async def test_two_agents_racing_for_one_name_on_two_nodes_exactly_one_wins(redis_server):
    """Twenty names, each asked for at once by a raw agent on node1 and one on node2."""
    async with cluster_nodes(redis_server.url, 2) as (one, two):

        async def ask(node: Relay, name: str) -> tuple[Relay, p.Frame]:
            async with raw_agent(node, name) as (_ws, answer):
                await asyncio.sleep(0.3)  # stay connected while the rival hears its answer
                return node, answer

        names = [f"race{i}" for i in range(20)]
        results = await asyncio.gather(*(ask(n, name) for name in names for n in (one, two)))
        client = redis_server.client()
        for index, name in enumerate(names):
            pair = results[2 * index : 2 * index + 2]
            won = [node for node, answer in pair if isinstance(answer, p.Welcome)]
            lost = [answer for _node, answer in pair if isinstance(answer, p.Error)]
            assert len(won) == 1, f"{name}: {[a for _, a in pair]}"
            assert len(lost) == 1 and lost[0].code in ("name_taken", "name_held"), lost
            winner = "node1" if won[0] is one else "node2"
            # the winner's agent left without a GOAWAY: held for it, on the winner's node
            assert client.hget(f"molehill:name:{name}", "node") == winner


async def test_a_lost_agent_gets_its_name_back_on_another_node_with_its_resume_token(
    redis_server,
):
    async with cluster_nodes(redis_server.url, 2, lease=30.0) as (one, two):
        async with raw_agent(one, "keep") as (_ws, welcome):
            assert isinstance(welcome, p.Welcome)
        # the connection closed without a GOAWAY: node1 holds the name for the lease
        await eventually(lambda: "keep" in one.leases, what="node1 to hold 'keep'")
        client = redis_server.client()
        await eventually(
            lambda: client.hget("molehill:name:keep", "state") == "held", what="held in Redis"
        )
        async with raw_agent(two, "keep") as (_ws, answer):
            assert isinstance(answer, p.Error) and answer.code == "name_held"
            assert "held for its previous agent" in answer.message
        async with raw_agent(two, "keep", resume="not-the-token") as (_ws, answer):
            assert isinstance(answer, p.Error) and answer.code == "name_held"
        async with raw_agent(two, "keep", resume=welcome.resume) as (_ws, back):
            assert isinstance(back, p.Welcome)
            assert back.name == "keep" and back.resume == welcome.resume
            assert "keep" in two.tunnels
            assert client.hgetall("molehill:name:keep") | {"resume": ""} == {
                "node": "node2",
                "nodes": "node2",
                "state": "live",
                "label": "",
                "resume": "",
                "policy": "{}",
            }


async def test_a_name_released_on_purpose_is_free_on_every_node(redis_server, app_port):
    async with cluster_nodes(redis_server.url, 2) as (one, two):
        async with agent_for(one, app_port, "shared"):
            pass  # a deliberate stop: GOAWAY, the name is free at once
        client = redis_server.client()
        await eventually(lambda: not client.exists("molehill:name:shared"), what="release")
        async with agent_for(two, app_port, "shared") as tunnel:
            got = await get(two.http_port, tunnel.host, "/download?size=100000")
            assert hashlib.sha256(got.body).hexdigest() == pattern_sha256(100_000)


async def test_a_node_that_lost_its_lease_stops_serving_the_name(redis_server, app_port):
    """Another node's agent holds the name in Redis now (here written by hand: another node,
    another resume token): within a renewal,
    node1 drops its tunnel and tells its agent why. lease_lost is "not now" to the agent (the
    name may be back on another node): it tries again, and is refused for good only by the
    answer to that (the name is another node's)."""
    async with cluster_nodes(redis_server.url, 1, lease=1.5) as (one,):
        with pytest.raises(Refused) as info:
            async with agent_for(one, app_port, "moved") as tunnel:
                redis_server.client().hset(
                    "molehill:name:moved", mapping={"node": "elsewhere", "resume": "theirs"}
                )
                await asyncio.wait_for(tunnel.task, 5)
        told = [e.reason for e in tunnel.events if isinstance(e, Reconnecting)]
        assert told and "another relay node holds the name 'moved'" in told[0], told
        assert info.value.code in ("name_taken", "name_held")  # the other agent's, for good
        assert "moved" not in one.tunnels


async def test_random_names_never_collide_across_nodes(redis_server, app_port):
    async with (
        cluster_nodes(redis_server.url, 2) as (one, two),
        agent_for(one, app_port) as a,
        agent_for(two, app_port) as b,
    ):
        assert a.agent.name and b.agent.name and a.agent.name != b.agent.name
        client = redis_server.client()
        assert client.hget(f"molehill:name:{a.agent.name}", "node") == "node1"
        assert client.hget(f"molehill:name:{b.agent.name}", "node") == "node2"


async def test_a_node_does_not_start_without_its_redis(tmp_path):
    port = free_port()
    relay = Relay(node_settings(f"redis://127.0.0.1:{port}/0", "lonely"))
    with pytest.raises(RelayConfigError) as info:
        await relay.start()
    assert f"127.0.0.1:{port}" in str(info.value) and "start Redis" in str(info.value)
