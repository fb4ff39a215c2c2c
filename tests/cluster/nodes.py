"""Relay nodes of one cluster in the test's own loop (their state inspectable), and agents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from relay.cluster import parse_cluster
from relay.server import Relay
from tests.cluster.redis_proc import free_port
from tests.support.stack import relay_settings

SECRET = "test-cluster-secret-0123456789"


def node_settings(redis_url: str, node_id: str, secret: str = SECRET, **overrides: object):
    """A node whose agents' listener (where other nodes link to it) is on a port free now."""
    port = free_port()
    settings = relay_settings(agents_port=port, **overrides)
    settings.cluster = parse_cluster(redis_url, node_id, f"ws://127.0.0.1:{port}", secret)
    return settings


@asynccontextmanager
async def cluster_nodes(
    redis_url: str, count: int, first: int = 1, **overrides: object
) -> AsyncIterator[list]:
    """``count`` relay nodes (node1, node2, ... from node``first``) sharing ``redis_url``."""
    async with AsyncExitStack() as stack:
        nodes = []
        for index in range(count):
            relay = Relay(node_settings(redis_url, f"node{first + index}", **overrides))
            nodes.append(await stack.enter_async_context(relay))
        yield nodes


async def linked(nodes: list[Relay], timeout: float = 10.0) -> None:
    """Wait until every node has a link to every other one."""
    from tests.support.waiting import eventually

    def all_linked() -> bool:
        for node in nodes:
            assert node.node is not None
            others = [n.settings.cluster.node_id for n in nodes if n is not node]  # type: ignore[union-attr]
            if any(node.node.links.get(other) is None for other in others):
                return False
        return True

    await eventually(all_linked, timeout, what="every node to link to every other")
