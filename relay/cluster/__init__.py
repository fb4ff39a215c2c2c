"""Relay nodes sharing one domain: who holds each tunnel name, kept in Redis (docs: Cluster)."""

from relay.cluster.registry import Claim, LocalRegistry, NameRegistry
from relay.cluster.settings import ClusterSettings, parse_cluster

__all__ = ["Claim", "ClusterSettings", "LocalRegistry", "NameRegistry", "parse_cluster"]
