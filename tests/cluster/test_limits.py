"""Limits across a cluster, with real nodes and a real redis-server: a token's max_tunnels
counts its tunnels on every node (in the claim script, once per registration), and a tunnel's
request rate is shared among the live nodes (each node's bucket: the rate divided by them)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from relay.agent import AgentSettings
from relay.agent.links import LinkedAgent
from tests.cluster.nodes import cluster_nodes, linked
from tests.relay.helpers import get, make_token, raw_agent, refusal
from tests.support.stack import agent_for
from tests.support.waiting import eventually

LIMITED = make_token("limited", max_tunnels=2)


async def test_max_tunnels_counts_a_token_s_tunnels_on_every_node(redis_server, app_port):
    client = redis_server.client()
    # stale members of the token's set: an expired name, and one another token holds now
    client.hset("molehill:name:other", mapping={"node": "node9", "state": "live", "label": "x"})
    client.sadd("molehill:label:limited", "molehill:name:ghost", "molehill:name:other")
    async with cluster_nodes(redis_server.url, 2, tokens=(LIMITED.entry,)) as (one, two):
        async with (
            agent_for(one, app_port, "first", token=LIMITED.secret),
            agent_for(two, app_port, "second", token=LIMITED.secret) as second,
        ):
            assert client.smembers("molehill:label:limited") == {
                "molehill:name:first",
                "molehill:name:second",
            }  # the stale ones were dropped, and did not count
            for node in (one, two):  # one tunnel on each node: each node alone would say yes
                refused = await refusal(node, app_port, "third", token=LIMITED.secret)
                assert refused.code == "too_many_tunnels"
                assert "2 tunnel(s) open across the relay cluster" in refused.message
            # the same agent coming back, and a second link of it, are not new tunnels
            async with raw_agent(
                two, "second", token=LIMITED.secret, resume=second.agent.resume
            ) as (_, back):
                assert back.name == "second"  # type: ignore[attr-defined]
            await eventually(lambda: "second" in two.tunnels, what="the agent's own link back")
            settings = AgentSettings(
                app_port,
                relay=two.agents_url,
                more_relays=(one.agents_url,),
                name="second",
                token=LIMITED.secret,
                resume=second.agent.resume,
                backoff_max=0.5,
            )
            second.agent.stop()
            await asyncio.wait({second.task}, timeout=5)
            both = LinkedAgent(settings)
            task = asyncio.create_task(both.run())
            try:
                await eventually(lambda: len(both.up) == 2, timeout=10, what="two links")
                refused = await refusal(one, app_port, "third", token=LIMITED.secret)
                assert refused.code == "too_many_tunnels"
            finally:
                both.stop()
                await asyncio.wait({task}, timeout=5)
        # every tunnel stopped on purpose: the count is back to 0 on every node
        async with (
            agent_for(two, app_port, "third", token=LIMITED.secret),
            agent_for(one, app_port, "fourth", token=LIMITED.secret),
        ):
            pass
        assert client.scard("molehill:label:limited") <= 2


async def burst(port: int, name: str, count: int) -> int:
    """``count`` requests at once-ish through one node; how many were let through."""
    codes = [(await get(port, f"{name}.localhost:{port}")).status for _ in range(count)]
    assert set(codes) <= {200, 429}, codes
    return codes.count(200)


async def test_a_tunnel_s_rate_is_shared_among_the_live_nodes(redis_server, app_port):
    """rate = burst = 6 per tunnel, three nodes: each node lets 2 through in a burst (6 in
    all); when a node stops, each of the two others lets 3 through."""
    async with (
        cluster_nodes(redis_server.url, 2, rate=6.0, burst=6.0) as (one, two),
        AsyncExitStack() as third,
    ):
        three = (
            await third.enter_async_context(
                cluster_nodes(redis_server.url, 1, first=3, rate=6.0, burst=6.0)
            )
        )[0]
        await linked([one, two, three])
        async with agent_for(one, app_port, "rated"):
            await eventually(lambda: two.routes.get("rated") is not None, what="a route")
            await eventually(lambda: three.routes.get("rated") is not None, what="a route")
            assert one.tunnels["rated"].bucket.rate == 2.0
            through = [await burst(node.http_port, "rated", 6) for node in (one, two, three)]
            # 2 each, and at most one more token refilled (2/s) during a burst
            assert all(2 <= n <= 3 for n in through), through
            await third.aclose()  # node3 stops: node1 and node2 share the rate in two now
            await eventually(
                lambda: one.tunnels["rated"].bucket.rate == 3.0,
                timeout=10,
                what="node1 to reshare the rate",
            )
            await asyncio.sleep(1.5)  # the buckets fill up to their (new) burst again
            through = [await burst(node.http_port, "rated", 6) for node in (one, two)]
            assert all(3 <= n <= 4 for n in through), through
