"""Tunnels held on other nodes, as this node's visitors see them: looked up in the directory
(no Redis round trip), reached over the node link to their owner.

:class:`Routes` stands where the relay's ``tunnels`` dict stands for routing: this node's own
tunnels first, then a :class:`RemoteTunnel` for a name another node holds. A RemoteTunnel looks
like an agent session to a visitor's connection (rules, bucket, streams, attach, detach), so
per-request policy is applied here, once, exactly as for a local tunnel.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from relay.cluster.records import options_from_policy
from relay.server.access import AccessRules, TokenBucket, rules_from_options
from relay.server.rate_share import new_bucket

if TYPE_CHECKING:
    from relay.cluster.directory import Directory
    from relay.server import Relay
    from relay.server.node_link import NodeLink, NodeLinks
    from relay.server.visitor import Visitor


class RemoteTunnel:
    """Tunnel ``name``, held by the node at the other end of ``link``."""

    protocol = "http"

    def __init__(
        self, name: str, link: NodeLink, rules: AccessRules, bucket: TokenBucket | None
    ) -> None:
        self.name = name
        self.link = link
        self.rules = rules
        self.bucket = bucket
        self.streams: dict[int, Visitor] = {}
        self.client_streams: dict[str, int] = {}

    @property
    def checks(self) -> bool:
        return self.rules.any or self.bucket is not None

    def attach(self, conn: Visitor, client: str = "") -> bool:
        """Open a stream for ``conn`` on the node link; its OPEN names the tunnel and client."""
        link = self.link
        if not link.usable:
            return False
        stream = link.wire.open_stream(f"{self.name}/{client or conn.client_ip}", conn.client_port)
        link.streams[stream.id] = conn
        self.streams[stream.id] = conn
        conn.bind(link, stream)
        link.flush()
        node = link.relay.node
        if node is not None:
            node.forwarded[link.peer_id] = node.forwarded.get(link.peer_id, 0) + 1
        return True

    def detach(self, sid: int) -> None:
        """Stream ``sid`` is over: it leaves this tunnel and the link (whose table the
        visitor's connection does not leave on its own: a local tunnel's table is its link's)."""
        self.streams.pop(sid, None)
        self.link.streams.pop(sid, None)


class Routes(Mapping[str, Any]):
    """The tunnels a visitor of this node may reach: this node's, then the other nodes'."""

    def __init__(self, relay: Relay, directory: Directory, links: NodeLinks) -> None:
        self.relay = relay
        self.directory = directory
        self.links = links
        # (name) -> (node, policy, link, tunnel): kept while the holder and the link stay the
        # same, so a tunnel's per-client counts and rate bucket live across requests.
        self._remote: dict[str, tuple[str, str, NodeLink, RemoteTunnel]] = {}

    def get(self, name: str, default: Any = None) -> Any:
        local = self.relay.tunnels.get(name)
        if local is not None:
            return local
        return self.remote(name) or default

    def remote(self, name: str) -> RemoteTunnel | None:
        holders = self.directory.holders(name)
        if not holders:
            self._remote.pop(name, None)
            return None
        # An agent with several links is served through the first holder whose link is up:
        # a dead or frozen node's link is down (closed, or its heartbeat timed out) before
        # its node key expires in Redis.
        for holder in holders:
            link = self.links.get(holder.node)
            if link is not None:
                break
        else:
            return None
        known = self._remote.get(name)
        if known is not None and known[:3] == (holder.node, holder.policy, link):
            return known[3]
        try:
            rules = rules_from_options(options_from_policy(holder.policy))
        except ValueError:
            return None  # a record this node cannot read: not served from here
        tunnel = RemoteTunnel(name, link, rules, new_bucket(self.relay))
        self._remote[name] = (holder.node, holder.policy, link, tunnel)
        return tunnel

    def __getitem__(self, name: str) -> Any:
        found = self.get(name)
        if found is None:
            raise KeyError(name)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self.relay.tunnels)

    def __len__(self) -> int:
        return len(self.relay.tunnels)

    def buckets(self) -> list[TokenBucket | None]:
        """The rate buckets of the other nodes' tunnels, as visitors of this node use them."""
        return [entry[3].bucket for entry in self._remote.values()]


class Held:
    """Names whose visitors get the "offline" page: held here, or held (or unreachable) on
    another node."""

    def __init__(self, relay: Relay, directory: Directory) -> None:
        self.relay = relay
        self.directory = directory

    def __contains__(self, name: object) -> bool:
        return name in self.relay.leases or (isinstance(name, str) and name in self.directory.names)
