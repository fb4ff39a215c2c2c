"""The dialling end of a node-to-node link: this node's visitors' streams to tunnels that
other nodes hold. One link per other node, kept open by :class:`NodeLinks`.

The link is the stream core's own session over a websocket, with its per-stream flow control;
this node speaks as the relay side (it answers the other node's HELLO with WELCOME, then opens
streams), authenticated both ways by the cluster secret (relay/cluster/node_auth.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websockets.client import ClientProtocol
from websockets.http11 import Response
from websockets.uri import parse_uri

from relay.cluster import node_auth
from relay.transport.dial import dial
from relay.transport.link import FrameLink
from relay.wire import codec as p
from relay.wire.session import Session, Side

if TYPE_CHECKING:
    from relay.server import Relay
    from relay.server.visitor import Visitor

CONNECT_TIMEOUT = 5.0


class NodeLink(FrameLink):
    """This node's link to node ``peer_id``; ``ready`` resolves once it can carry streams."""

    def __init__(self, relay: Relay, peer_id: str, ws: ClientProtocol, nonce: str) -> None:
        s = relay.settings
        super().__init__(ws, Session(Side.RELAY, s.window, max_message=s.max_message))
        self.relay = relay
        self.peer_id = peer_id
        self.nonce = nonce
        self.streams: dict[int, Visitor] = {}
        self.ready: asyncio.Future[None] = self.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        ws = self.ws
        assert isinstance(ws, ClientProtocol)
        request = ws.connect()
        cluster = self.relay.settings.cluster
        assert cluster is not None
        headers = node_auth.sign(cluster.secret, cluster.node_id, self.peer_id)
        self.nonce = headers[node_auth.NONCE]
        for key, value in headers.items():
            request.headers[key] = value
        ws.send_request(request)
        self._write_ws()

    def on_handshake(self, event: Any) -> None:
        cluster = self.relay.settings.cluster
        assert cluster is not None
        if not isinstance(event, Response):
            return
        # get_all: Headers.get raises on a repeated header (a traceback out of data_received).
        proofs = event.headers.get_all(node_auth.REPLY)
        proof = proofs[0] if len(proofs) == 1 else ""
        if event.status_code != 101 or self.ws.handshake_exc is not None:
            self.fail(f"node {self.peer_id} answered HTTP {event.status_code}")
        elif not node_auth.reply_valid(cluster.secret, self.nonce, proof):
            self.fail(f"node {self.peer_id} did not prove it has the cluster secret")

    def on_frame(self, frame: p.Frame) -> None:
        if type(frame) is p.Hello:
            s = self.relay.settings
            window = min(frame.window, s.window * 4)
            self.wire.welcome(p.Welcome("", "", "", 0.0, s.ping_interval, s.window), window)
            self.ws.max_message_size = s.max_message
            self.flush()
            self.start_heartbeat(s.ping_interval, s.ping_timeout)
            if not self.ready.done():
                self.ready.set_result(None)

    @property
    def usable(self) -> bool:
        return (
            self.ready.done()
            and not self.closed.done()
            and not self.wire.goaway_received
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def on_close(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
            self.ready.exception()  # marked seen: the dialler may have given up waiting
        for conn in list(self.streams.values()):
            conn.on_reset("session_lost", reason)
        self.streams.clear()


class NodeLinks:
    """A link to every other live node, dialled in the background and again when lost."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.links: dict[str, NodeLink] = {}
        self.urls: dict[str, str] = {}
        self._dialling: dict[str, asyncio.Task[None]] = {}
        self.failures = 0

    def get(self, node: str) -> NodeLink | None:
        link = self.links.get(node)
        return link if link is not None and link.usable else None

    def sync(self, nodes: dict[str, str], me: str) -> None:
        """Keep a link to each of ``nodes`` (id -> URL) but ``me``; drop the others'."""
        for node, url in nodes.items():
            if node == me:
                continue
            if self.urls.get(node) != url:
                self._drop(node)
                self.urls[node] = url
            link = self.links.get(node)
            if (link is None or link.closed.done()) and node not in self._dialling:
                task = asyncio.get_running_loop().create_task(self._dial(node, url))
                self._dialling[node] = task
                task.add_done_callback(self._dialled(node))
        for node in [n for n in self.urls if n not in nodes]:
            self._drop(node)
            del self.urls[node]

    def _dialled(self, node: str) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            if self._dialling.get(node) is task:
                del self._dialling[node]

        return done

    def _drop(self, node: str) -> None:
        task = self._dialling.pop(node, None)
        if task is not None:
            task.cancel()
        link = self.links.pop(node, None)
        if link is not None:
            link.close("the node left the cluster")

    async def _dial(self, node: str, url: str) -> None:
        try:
            uri = parse_uri(url.rstrip("/") + node_auth.PATH)
        except Exception:
            self.relay.log_event("node_link_failed", node=node, error=f"bad URL {url[:80]!r}")
            return
        context = ssl.create_default_context() if uri.secure else None
        made: list[NodeLink] = []

        def factory() -> NodeLink:
            link = NodeLink(self.relay, node, ClientProtocol(uri, max_size=p.MAX_MESSAGE), "")
            made.append(link)
            return link

        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await dial(factory, uri.host, uri.port, context)
                await made[0].ready
        except (OSError, TimeoutError, ConnectionError) as exc:
            self.failures += 1
            if made:
                made[0].fail("could not open the node link")
            self.relay.log_event("node_link_failed", node=node, error=str(exc) or "timeout")
            return
        self.links[node] = made[0]
        self.relay.log_event("node_link_up", node=node)

    async def stop(self) -> None:
        for task in list(self._dialling.values()):
            task.cancel()
        for task in list(self._dialling.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for link in list(self.links.values()):
            link.close("relay shutting down", code=1001)
        if self.links:
            await asyncio.wait([link.closed for link in self.links.values()], timeout=2.0)
        self.links.clear()
