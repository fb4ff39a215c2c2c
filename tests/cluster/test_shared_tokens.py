"""Agent tokens shared in Redis: `molehill relay token add|list|revoke --cluster URL` once, and
every node (real nodes, a real redis-server) accepts, reserves and revokes at once."""

from __future__ import annotations

import asyncio
import time

import pytest

from relay.agent import Agent, AgentSettings, Refused
from tests.cluster.nodes import cluster_nodes
from tests.cluster.redis_proc import free_port
from tests.relay.helpers import get, refusal
from tests.support.cli import run_molehill
from tests.support.stack import agent_for


async def token_add(redis_url: str, label: str, *extra: str) -> str:
    done = await run_molehill("relay", "token", "add", label, "--cluster", redis_url, *extra)
    assert done.code == 0, done.err
    assert "every node accepts it now" in done.err
    return done.out.strip()


async def test_a_token_added_once_works_on_every_node_and_a_revoke_reaches_them_all(
    redis_server, app_port
):
    async with cluster_nodes(redis_server.url, 2) as (one, two):
        # no token anywhere yet: the loopback nodes are open
        async with agent_for(one, app_port, "before"):
            pass
        alice = await token_add(redis_server.url, "alice", "--names", "alice-*")
        bob = await token_add(redis_server.url, "bob")
        dup = await run_molehill("relay", "token", "add", "bob", "--cluster", redis_server.url)
        assert dup.code == 1 and "a token labelled 'bob' exists" in dup.err

        for node in (one, two):  # both nodes know both tokens (pub/sub), without a restart
            assert (await refusal(node, app_port, "anon")).code == "token_missing"
            assert (await refusal(node, app_port, "x", token="nope")).code == "token_invalid"
            refused = await refusal(node, app_port, "alice-shop", token=bob)
            assert refused.code == "name_reserved"
        listed = await run_molehill("relay", "token", "list", "--cluster", redis_server.url)
        assert listed.code == 0 and alice not in listed.out and bob not in listed.out
        assert [line.split()[:2] for line in listed.out.splitlines()[1:]] == [
            ["alice", "active"],
            ["bob", "active"],
        ]

        async with agent_for(two, app_port, "bob-app", token=bob) as bobs:
            events: list = []
            agent = Agent(
                AgentSettings(app_port, relay=one.agents_url, name="alice-shop", token=alice),
                events.append,
            )
            run = asyncio.create_task(agent.run())
            await asyncio.wait_for(agent.wait_online(), 10)
            for node in (one, two):  # visitors through either node
                page = await get(node.http_port, f"alice-shop.localhost:{node.http_port}")
                assert page.status == 200

            revoked = await run_molehill(
                "relay", "token", "revoke", "alice", "--cluster", redis_server.url
            )
            assert revoked.code == 0, revoked.err
            started = time.monotonic()
            with pytest.raises(Refused) as info:
                await asyncio.wait_for(run, 5)
            assert info.value.code == "token_revoked"
            assert time.monotonic() - started < 2.5, "the revoke took too long to reach node1"
            assert (await refusal(two, app_port, "alice-2", token=alice)).code == "token_revoked"
            assert bobs.agent.state == "online"  # bob's tunnel on node2 is untouched
        listed = await run_molehill("relay", "token", "list", "--cluster", redis_server.url)
        assert "alice            revoked" in listed.out


async def test_a_node_reads_the_shared_tokens_at_start_and_bad_input_is_refused(
    redis_server, app_port
):
    carol = await token_add(redis_server.url, "carol")
    client = redis_server.client()
    client.hset("molehill:tokens", "broken", "{not json")  # skipped, and logged, by the nodes
    async with cluster_nodes(redis_server.url, 1) as (node,):
        assert (await refusal(node, app_port, "anon")).code == "token_missing"
        async with agent_for(node, app_port, "carols", token=carol) as tunnel:
            assert tunnel.agent.name == "carols"
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    done = await run_molehill("relay", "token", "list", "--cluster", nowhere)
    assert done.code == 1 and f"cannot reach the cluster's Redis at {nowhere}" in done.err
    done = await run_molehill("relay", "token", "list")
    assert done.code == 2 and "--config" in done.err and "--cluster" in done.err
    done = await run_molehill(
        "relay", "token", "add", "x", "--cluster", redis_server.url, "--max-tunnels", "-1"
    )
    assert done.code == 2 and "limits cannot be negative" in done.err
