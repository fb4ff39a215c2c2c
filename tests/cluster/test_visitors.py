"""Visitors reach a tunnel through any node: the node they reach applies the tunnel's policy
and forwards the stream over its node link to the node that holds the tunnel. Data checked by
hash; the client's address reaches the agent."""

from __future__ import annotations

import asyncio
import hashlib
import json

from tests.cluster.nodes import cluster_nodes, linked
from tests.relay.helpers import get, open_from
from tests.support.apps import pattern_sha256
from tests.support.stack import agent_for, raw_request, read_response
from tests.support.waiting import eventually

SIZE = 3_000_000


async def routed(node, name: str) -> None:
    await eventually(lambda: node.routes.get(name) is not None, what=f"a route to {name}")


async def test_every_tunnel_through_every_node_by_hash(redis_server, app_port):
    async with (
        cluster_nodes(redis_server.url, 3) as nodes,
        agent_for(nodes[0], app_port, "web") as web,
        agent_for(nodes[1], app_port, "api"),
    ):
        await linked(nodes)
        for node in nodes:
            for name in ("web", "api"):
                await routed(node, name)
                host = f"{name}.localhost:{node.http_port}"
                got = await get(node.http_port, host, f"/download?size={SIZE}")
                assert got.status == 200, (node.settings.cluster, name, got.head)
                assert hashlib.sha256(got.body).hexdigest() == pattern_sha256(SIZE)
                body = bytes(range(256)) * 4000
                reader, writer = await open_from(node.http_port)
                writer.write(raw_request(host, "/upload", "POST", body=body))
                answer = await read_response(reader)
                writer.close()
                assert json.loads(answer.body)["sha256"] == hashlib.sha256(body).hexdigest()
        # keep-alive: several requests on one connection through a node that is not the owner
        reader, writer = await open_from(nodes[2].http_port)
        host = f"web.localhost:{nodes[2].http_port}"
        for size in (10, 100_000, 1):
            writer.write(raw_request(host, f"/download?size={size}"))
            answer = await read_response(reader)
            assert hashlib.sha256(answer.body).hexdigest() == pattern_sha256(size)
        writer.close()
        assert any(r.path.startswith("/download") for r in web.records())


async def test_policy_is_applied_on_the_node_the_visitor_reached_and_the_client_kept(
    redis_server, app_port
):
    async with (
        cluster_nodes(redis_server.url, 2) as (one, two),
        agent_for(one, app_port, "locked", basic_auth="ann:secret", deny=["127.0.0.9/32"]) as t,
    ):
        await linked([one, two])
        await routed(two, "locked")
        host = f"locked.localhost:{two.http_port}"
        refused = await get(two.http_port, host, "/echo")
        assert refused.status == 401
        denied = await get(
            two.http_port,
            host,
            "/echo",
            [("Authorization", "Basic YW5uOnNlY3JldA==")],
            source="127.0.0.9",
        )
        assert denied.status == 403
        ok = await get(
            two.http_port,
            host,
            "/echo",
            [("Authorization", "Basic YW5uOnNlY3JldA==")],
            source="127.0.0.7",
        )
        assert ok.status == 200
        headers = dict(json.loads(ok.body)["headers"])
        assert headers["X-Forwarded-For"] == "127.0.0.7"
        await eventually(lambda: t.records(), what="the agent's record")
        assert t.records()[-1].client.startswith("127.0.0.7")
        # the refusals never reached the owner node or the agent
        assert len([r for r in t.records() if r.path == "/echo"]) == 1


async def test_a_tunnel_that_left_is_offline_or_unknown_through_other_nodes(redis_server, app_port):
    async with cluster_nodes(redis_server.url, 2) as (one, two):
        await linked([one, two])
        async with agent_for(one, app_port, "brief"):
            await routed(two, "brief")
        await eventually(lambda: two.routes.get("brief") is None, what="the route to go")
        gone = await get(two.http_port, f"brief.localhost:{two.http_port}", "/")
        assert gone.status == 404


def _redis_calls(client) -> int:
    return sum(int(v["calls"]) for v in client.info("commandstats").values())


async def test_visitor_requests_cost_no_redis_commands(redis_server, app_port):
    """Routing reads the node's own copy of the directory: 200 keep-alive requests through a
    node that does not hold the tunnel add no Redis commands beyond the nodes' background
    renewals (a few a second at most)."""
    async with (
        cluster_nodes(redis_server.url, 2) as (one, two),
        agent_for(one, app_port, "web"),
    ):
        await linked([one, two])
        await routed(two, "web")
        client = redis_server.client()
        host = f"web.localhost:{two.http_port}"
        reader, writer = await open_from(two.http_port)
        before = _redis_calls(client)
        started = asyncio.get_running_loop().time()
        for _ in range(200):
            writer.write(raw_request(host, "/download?size=100"))
            answer = await read_response(reader)
            assert answer.status == 200
        took = asyncio.get_running_loop().time() - started
        calls = _redis_calls(client) - before - 1  # the INFO itself
        writer.close()
        background = 2 * (took / min(one.registry.renew_every, 5.0) + 1) * 4  # renew, re-read
        assert calls <= background, f"{calls} Redis commands for 200 requests in {took:.2f} s"
