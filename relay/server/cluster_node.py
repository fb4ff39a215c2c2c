"""A relay as one node of a cluster: its shared registry, its directory of the other nodes'
names, its links to them, and the checks on links that other nodes open to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from relay.cluster.directory import Directory
from relay.cluster.node_auth import MAC, NODE, NONCE, PATH, REPLY, TIME, Verifier, reply
from relay.cluster.redis_registry import RedisRegistry
from relay.cluster.settings import ClusterSettings
from relay.server import shared_tokens
from relay.server.access import TokenEntry
from relay.server.node_link import NodeLinks
from relay.server.rate_share import nodes_sharing, reshare
from relay.server.remote import Held, Routes

if TYPE_CHECKING:
    from relay.server import Relay


class ClusterNode:
    """Started by :meth:`Relay.start` when the settings name a cluster."""

    def __init__(self, relay: Relay, cluster: ClusterSettings) -> None:
        s = relay.settings
        self.relay = relay
        self.cluster = cluster
        self.registry = RedisRegistry(
            cluster,
            s.lease,
            lambda: [
                (n, t.token_label, t.resume, t.policy, t.links) for n, t in relay.tunnels.items()
            ],
            self._lost_name,
            relay.log_event,
        )
        self.directory = Directory(cluster.redis_url, cluster.node_id)
        self.links = NodeLinks(relay)
        self.routes = Routes(relay, self.directory, self.links)
        self.held = Held(relay, self.directory)
        self.verifier = Verifier(cluster.secret, cluster.node_id)
        self._syncer: asyncio.Task[None] | None = None
        # Streams sent to / taken from each other node over the links (for /metrics).
        self.forwarded: dict[str, int] = {}
        self.received: dict[str, int] = {}
        # Agent tokens: the config file's, and those shared in Redis (relay/server/shared_tokens.py)
        self.own_tokens = tuple(s.tokens)
        self.shared_tokens: list[TokenEntry] = []
        self.directory.on_tokens = self._shared_tokens_changed

    async def start(self) -> None:
        """Join; raises ConnectionError (with the reason) when Redis is not there."""
        await self.registry.start()
        try:
            await self.directory.start()
        except Exception as exc:
            await self.registry.stop()
            raise ConnectionError(f"cannot read the cluster's directory: {exc}") from None
        self._syncer = asyncio.create_task(self._sync_links())

    async def _sync_links(self) -> None:
        """Dial every node the directory knows, whenever it changes (and retry every 2 s)."""
        changed = self.directory.changed
        sharing = nodes_sharing(self.relay)
        while True:
            changed.clear()
            self.links.sync(self.directory.nodes, self.cluster.node_id)
            if nodes_sharing(self.relay) != sharing:  # a node came or went: rates reshared
                sharing = nodes_sharing(self.relay)
                tunnels = self.relay.tunnels.values()
                reshare(self.relay, [t.bucket for t in tunnels] + self.routes.buckets())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await changed.wait()

    def set_own_tokens(self, tokens: Sequence[TokenEntry]) -> None:
        """The config file's tokens changed (reload): merge them with the shared ones again."""
        self.own_tokens = tuple(tokens)
        self.relay.settings.tokens = shared_tokens.merged(self.own_tokens, self.shared_tokens)

    def _shared_tokens_changed(self, fields: Mapping[Any, Any]) -> None:
        self.shared_tokens = shared_tokens.decode(fields)
        self.relay.settings.tokens = shared_tokens.merged(self.own_tokens, self.shared_tokens)
        self.relay.log_event("shared_tokens", count=len(self.shared_tokens))
        self.relay.drop_revoked()

    def _lost_name(self, name: str) -> None:
        """Another node holds ``name`` now (its agent came back there): stop serving it here."""
        session = self.relay.tunnels.get(name)
        if session is not None:
            session.refuse("lease_lost", f"another relay node holds the name '{name}' now")
            self.relay.log_event("lease_lost", name=name, peer=session.peer)

    def link_request(self, request: Request) -> Response | str | None:
        """For a request on the agents' listener: None if it is no node link; the refusal
        (403) if it is one without the secret; else the peer's node id."""
        if request.path != PATH:
            return None
        # get_all, not get: websockets' Headers.get raises on a repeated header, and the
        # exception escaped data_received (a traceback per connection, for anyone to cause).
        found = {k: request.headers.get_all(k) for k in _AUTH_HEADERS}
        fields = {k: values[0] if values else "" for k, values in found.items()}
        if any(len(values) > 1 for values in found.values()):
            why: str | None = "repeated node authentication headers"
        else:
            why = self.verifier.check(fields)
        if why is not None:
            self.relay.log_event("node_link_refused", peer_node=fields[NODE][:63])
            body = f"node link refused: {why}\n".encode()
            headers = Headers([("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return Response(403, "Forbidden", headers, body)
        return fields[NODE]

    def reply_header(self, request: Request) -> tuple[str, str]:
        nonce = request.headers.get_all(NONCE)[0]  # one, or link_request refused the request
        return REPLY, reply(self.cluster.secret, nonce)

    async def stop(self) -> None:
        if self._syncer is not None:
            self._syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._syncer
        await self.links.stop()
        await self.directory.stop()
        await self.registry.stop()


_AUTH_HEADERS = (NODE, TIME, NONCE, MAC)
