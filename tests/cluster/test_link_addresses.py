"""One relay name, several addresses (issue 16, point 3): ``--relay ws://relay.test:PORT`` where
the name resolves to two nodes' addresses (127.0.0.1 and 127.0.0.2, the same port) gives a link
through each. No hosts file can be changed here: the agent's injectable resolver answers for
the name; everything else is real (node processes, redis-server, visitors through each node)."""

from __future__ import annotations

import asyncio
import signal

from relay.agent import AgentSettings
from relay.agent.addresses import expand
from relay.agent.links import LinkedAgent, agent_for, links_summary
from relay.events import AgentEvent, LinkChanged
from tests.cluster.node_procs import node_proc, visit
from tests.cluster.redis_proc import free_port
from tests.support.waiting import eventually


async def test_a_name_with_two_addresses_gets_a_link_through_each(redis_server, tmp_path, app_port):
    port = free_port()
    asked: list[tuple[str, int]] = []

    async def resolver(host: str, asked_port: int) -> list[str]:
        asked.append((host, asked_port))
        return ["127.0.0.1", "127.0.0.2", "127.0.0.1"]  # a repeat is one address

    async with (
        node_proc(tmp_path, redis_server.url, "node1", port=port) as node1,
        node_proc(tmp_path, redis_server.url, "node2", port=port, host="127.0.0.2") as node2,
    ):
        url = f"ws://relay.test:{port}"
        settings = AgentSettings(
            local_port=app_port, relay=url, name="named", backoff_max=0.5, connect_timeout=2.0
        )
        settings.resolver = resolver
        events: list[AgentEvent] = []
        agent = agent_for(await expand(settings), events.append)
        assert isinstance(agent, LinkedAgent) and asked == [("relay.test", port)]
        task = asyncio.create_task(agent.run())
        try:
            await eventually(lambda: len(agent.up) == 2, what="a link through each address")
            labels = {e.relay for e in events if isinstance(e, LinkChanged) and e.up}
            assert labels == {f"{url} (127.0.0.1)", f"{url} (127.0.0.2)"}
            assert links_summary(agent) == "2/2 links up"
            record = redis_server.client().hgetall("molehill:name:named")
            assert sorted(record["nodes"].split()) == ["node1", "node2"]
            outcomes = [await visit(n.http_port, "named") for n in (node1, node2) for _ in "xxxx"]
            assert outcomes == ["ok"] * 8
            assert all(link.requests >= 4 for link in agent.links), [
                link.requests for link in agent.links
            ]

            node2.kill(signal.SIGKILL)
            await eventually(lambda: len(agent.up) == 1, timeout=8, what="node2's link down")
            assert links_summary(agent) == f"1/2 links up; down: {url} (127.0.0.2)"
            assert [await visit(node1.http_port, "named") for _ in "xx"] == ["ok", "ok"]
            assert agent.name == "named" and agent.state == "online"
        finally:
            agent.stop()
            await asyncio.wait({task}, timeout=5)
