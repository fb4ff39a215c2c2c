"""What a cluster looks like from its Redis: nodes (alive, last seen) and the names they hold.

Read-only: `molehill relay cluster status` uses it; no node needs to be asked.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from relay.cluster import records
from relay.cluster.settings import redact_url

TIMEOUT = 5.0


@dataclass
class TunnelStatus:
    name: str
    state: str  # "live", "held", or "held (node gone)": a live name whose node stopped renewing
    label: str
    expires_in: float  # seconds until the name's key expires, unless renewed
    also: list[str] = field(default_factory=list)  # other nodes its agent holds it through


@dataclass
class NodeStatus:
    id: str
    url: str
    state: str  # "alive" (renewing), "stopped" (stopped on purpose), "gone" (stopped renewing)
    last_seen: float | None  # seconds since its last renewal, by Redis's clock; None: unknown
    tunnels: list[TunnelStatus] = field(default_factory=list)


@dataclass
class ClusterStatus:
    redis: str
    nodes: list[NodeStatus]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


async def read_status(redis_url: str) -> ClusterStatus:
    """The cluster's nodes and names; ConnectionError (saying where and why) without Redis."""
    client = aioredis.from_url(
        redis_url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, decode_responses=True
    )
    try:
        async with asyncio.timeout(TIMEOUT * 2):
            return await _read(client, redis_url)
    except (RedisError, OSError, TimeoutError) as exc:
        raise ConnectionError(
            f"cannot read the cluster's Redis at {redact_url(redis_url)}: "
            f"{str(exc).rstrip('.') or type(exc).__name__}"
        ) from None
    finally:
        await client.aclose()


async def _read(client: aioredis.Redis, redis_url: str) -> ClusterStatus:
    seconds, micros = await client.time()
    now_ms = seconds * 1000 + micros // 1000
    nodes: dict[str, NodeStatus] = {}
    async for key in client.scan_iter(match=records.SEEN_PREFIX + "*", count=500):
        node_id = key[len(records.SEEN_PREFIX) :]
        seen = await _hash(client, key)
        alive = await client.exists(records.node_key(node_id))
        state = "alive" if alive else ("stopped" if seen.get("stopped") else "gone")
        nodes[node_id] = NodeStatus(node_id, seen.get("url", ""), state, _ago(now_ms, seen))
    async for key in client.scan_iter(match=records.NODE_PREFIX + "*", count=500):
        node_id = key[len(records.NODE_PREFIX) :]
        if node_id not in nodes:  # a node of an older version, without a heartbeat hash
            nodes[node_id] = NodeStatus(node_id, str(await client.get(key) or ""), "alive", None)
    async for key in client.scan_iter(match=records.NAME_PREFIX + "*", count=500):
        record = await _hash(client, key)
        ttl_ms = await client.pttl(key)
        if not record or ttl_ms == -2:  # expired between the scan and the read
            continue
        node_id = record.get("node", "")
        node = nodes.setdefault(node_id, NodeStatus(node_id, "", "gone", None))
        state = record.get("state", "?")
        if state == "live" and node.state != "alive":
            state = "held (node gone)"
        expires = max(0.0, ttl_ms / 1000) if ttl_ms >= 0 else -1.0
        listed = record.get("nodes", "").split()  # an agent with several links
        also = [n for n in listed if n != node_id] if node_id in listed else []
        tunnel = TunnelStatus(
            key[len(records.NAME_PREFIX) :], state, record.get("label", ""), expires, also
        )
        node.tunnels.append(tunnel)
    for node in nodes.values():
        node.tunnels.sort(key=lambda t: t.name)
    return ClusterStatus(redact_url(redis_url), sorted(nodes.values(), key=lambda n: n.id))


async def _hash(client: aioredis.Redis, key: str) -> dict[str, str]:
    """A hash's fields as text (the client decodes; the types say bytes or str)."""
    return {str(k): str(v) for k, v in (await client.hgetall(key)).items()}


def _ago(now_ms: int, seen: dict[str, str]) -> float | None:
    try:
        return max(0.0, (now_ms - int(seen["seen"])) / 1000)
    except (KeyError, ValueError):
        return None
