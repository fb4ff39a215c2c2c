"""Relay nodes of one cluster in the test's own loop (their state inspectable), and agents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from relay.cluster import parse_cluster
from relay.server import Relay
from tests.support.stack import relay_settings

SECRET = "test-cluster-secret-0123456789"


def node_settings(redis_url: str, node_id: str, **overrides: object):
    settings = relay_settings(**overrides)
    settings.cluster = parse_cluster(redis_url, node_id, "ws://127.0.0.1:1", SECRET)
    return settings


@asynccontextmanager
async def cluster_nodes(redis_url: str, count: int, **overrides: object) -> AsyncIterator[list]:
    """``count`` relay nodes (node1, node2, ...) sharing ``redis_url``."""
    async with AsyncExitStack() as stack:
        nodes = []
        for index in range(count):
            relay = Relay(node_settings(redis_url, f"node{index + 1}", **overrides))
            nodes.append(await stack.enter_async_context(relay))
        yield nodes
