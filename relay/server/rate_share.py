"""A tunnel's request rate (``rate``, ``burst``) in a cluster: each node's bucket holds the
limit divided by the nodes alive, so that visitors spread over the nodes (round robin) get the
limit in all, and no request costs a Redis command. On one relay the bucket holds it all."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from relay.server.access import TokenBucket

if TYPE_CHECKING:
    from relay.server import Relay


def nodes_sharing(relay: Relay) -> int:
    """How many nodes a tunnel's rate is divided among: the live ones this node knows of."""
    node = relay.node
    if node is None:
        return 1
    return len(set(node.directory.nodes) | {node.cluster.node_id})


def new_bucket(relay: Relay) -> TokenBucket | None:
    """This node's bucket for one tunnel (local or on another node), None without a rate."""
    s = relay.settings
    if not s.rate:
        return None
    share = nodes_sharing(relay)
    return TokenBucket(s.rate / share, (s.burst or s.rate) / share)


def reshare(relay: Relay, buckets: Iterable[TokenBucket | None]) -> None:
    """The number of live nodes changed: give every bucket its new share (a bucket holding more
    tokens than its new burst keeps only the burst)."""
    s = relay.settings
    if not s.rate:
        return
    share = nodes_sharing(relay)
    for bucket in buckets:
        if bucket is not None:
            bucket.rate = s.rate / share
            bucket.burst = max((s.burst or s.rate) / share, 1.0)
            bucket.tokens = min(bucket.tokens, bucket.burst)
