"""deploy/haproxy-cluster.cfg for real: three `molehill relay --cluster` processes with
deploy/relay-cluster-node.toml, a real redis-server, HAProxy in front of visitors and agents,
a `molehill http` process reaching the cluster only through HAProxy. Then kill -9 of the node
holding the tunnel: the agent's reconnection lands on another node, keeps its name, and
visitors through HAProxy are served again within 5 s. Data checked by hash."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx

from tests.cluster.haproxy_front import haproxy, node_config
from tests.cluster.nodes import SECRET
from tests.cluster.redis_proc import free_port
from tests.relay.helpers import get
from tests.reliability.procs import RelayProcess, agent_process, python_process
from tests.support.apps import pattern_sha256

SIZE = 1_000_000


@asynccontextmanager
async def node_process(tmp_path: Path, config: Path, redis_url: str, node_id: str):
    """A node as the guide starts it behind HAProxy: the config file plus its own flags."""
    http, agents = free_port(), free_port()
    args = ["-m", "tui.cli", "relay", "--config", str(config), "--lease", "30"]
    args += ["--http", f"127.0.0.1:{http}", "--agents", f"127.0.0.1:{agents}"]
    args += ["--cluster", redis_url, "--node-id", node_id]
    args += ["--node-url", f"ws://127.0.0.1:{agents}"]
    env = {"MOLEHILL_CLUSTER_SECRET": SECRET}
    async with python_process(node_id, tmp_path, *args, cls=RelayProcess, env=env) as node:
        node.http_port, node.agents_url = http, f"ws://127.0.0.1:{agents}"
        yield node


async def wait_listening(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on 127.0.0.1:{port}") from None
            await asyncio.sleep(0.05)


async def downloaded(port: int, name: str) -> str:
    got = await get(port, f"{name}.localhost:{port}", f"/download?size={SIZE}")
    assert got.status == 200, got.head
    return hashlib.sha256(got.body).hexdigest()


async def test_haproxy_spreads_visitors_and_agents_and_a_killed_node_s_tunnel_moves(
    redis_server, tmp_path, app_port
):
    async with AsyncExitStack() as stack:
        visitors_port = free_port()
        config = node_config(tmp_path, visitors_port)
        nodes = {}
        for node_id in ("node1", "node2", "node3"):
            nodes[node_id] = await stack.enter_async_context(
                node_process(tmp_path, config, redis_server.url, node_id)
            )
        for node in nodes.values():
            await wait_listening(node.http_port)
            await wait_listening(node.agents_port)
        ports = [(n.http_port, n.agents_port) for n in nodes.values()]
        lb_visitors, lb_agents = await stack.enter_async_context(
            haproxy(tmp_path, ports, visitors=visitors_port)
        )
        agents = [
            await stack.enter_async_context(
                agent_process(tmp_path / name, f"ws://127.0.0.1:{lb_agents}", app_port, name)
            )
            for name in ("victim", "bystander", "third")
        ]
        assert agents[0].url == f"http://victim.localhost:{lb_visitors}"
        redis = redis_server.client()
        owners = {a.name: redis.hget(f"molehill:name:{a.name}", "node") for a in agents}
        assert len(set(owners.values())) == 3, owners  # leastconn: one agent per node

        # Visitors through HAProxy (round robin: each request on a new connection reaches the
        # next node): every tunnel served through every node, data checked by hash.
        for _ in range(3):
            for agent in agents:
                assert await downloaded(lb_visitors, agent.name) == pattern_sha256(SIZE)

        # The relay trusts HAProxy's X-Forwarded-For (HAProxy is in trusted_proxies), and not
        # the one the visitor wrote itself: the app sees the visitor's own address as client.
        echo = await get(
            lb_visitors,
            f"victim.localhost:{lb_visitors}",
            "/echo",
            [("X-Forwarded-For", "203.0.113.9")],
        )
        assert echo.status == 200, echo.head
        seen = dict((k.lower(), v) for k, v in json.loads(echo.body)["headers"])
        hops = [hop.strip() for hop in seen["x-forwarded-for"].split(",")]
        assert hops[:2] == ["203.0.113.9", "127.0.0.1"], hops  # written by the visitor, HAProxy

        # HAProxy's health checks reach every node's /healthz; /metrics stays private
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{lb_agents}") as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/metrics")).status_code == 403

        # kill -9 of the node holding "victim"
        owner = nodes[owners["victim"]]
        opened_before = len(agents[0].events)
        owner.kill()
        killed = time.monotonic()
        assert await owner.wait() == -9
        while True:
            try:
                got = await asyncio.wait_for(
                    get(lb_visitors, f"victim.localhost:{lb_visitors}", f"/download?size={SIZE}"),
                    2.0,
                )
                if got.status == 200:
                    assert hashlib.sha256(got.body).hexdigest() == pattern_sha256(SIZE)
                    break
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                pass
            assert time.monotonic() - killed < 10, "victim not served again within 10 s"
            await asyncio.sleep(0.05)
        took = time.monotonic() - killed
        print(
            f"\nkill -9 of {owners['victim']} to first visitor served through HAProxy: {took:.2f} s"
        )
        assert took < 5.0, f"visitors were served again {took:.2f} s after the kill"

        reopened = await agents[0].event("reconnected", start=opened_before)
        assert reopened["name"] == "victim"
        new_owner = redis.hget("molehill:name:victim", "node")
        assert new_owner in nodes and new_owner != owners["victim"]
        # the others' tunnels, on live nodes, never stopped; all of them through HAProxy
        for _ in range(3):
            for agent in agents:
                if owners[agent.name] != owners["victim"]:
                    assert await downloaded(lb_visitors, agent.name) == pattern_sha256(SIZE)
            assert await downloaded(lb_visitors, "victim") == pattern_sha256(SIZE)
