"""The accepting end of a node-to-node link: another node's visitors' streams, spliced to the
agents of this node's tunnels.

Another node dials this node's agents' listener on ``/_molehill/node`` with HMAC headers
(relay/cluster/node_auth.py); :class:`AgentSession` checks them and hands its connection over
to a NodePeer. On this link the roles of the wire session are turned around: this node speaks
as the agent side (it sends HELLO, and receives OPENs), the dialling node as the relay side.
Each OPEN names the tunnel: ``client_host`` is ``NAME/CLIENT-ADDRESS``. Per-request policy was
applied on the node the visitor reached; here the stream goes straight to the agent.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from relay.http.names import label_problem
from relay.server.splice import SpliceEnd, splice
from relay.transport.link import FrameLink
from relay.wire import codec as p
from relay.wire.session import Session, Side

if TYPE_CHECKING:
    from websockets.protocol import Protocol as WsProtocol

    from relay.server import Relay


class NodePeer(FrameLink):
    """Streams from node ``peer_id``, each joined to an agent's stream on this node."""

    def __init__(self, relay: Relay, ws: WsProtocol, peer_id: str) -> None:
        s = relay.settings
        super().__init__(ws, Session(Side.AGENT, s.window, max_message=s.max_message))
        self.relay = relay
        self.peer_id = peer_id
        self.streams: dict[int, SpliceEnd] = {}
        self.ws.max_message_size = s.max_message  # authenticated: as much as an agent may send

    def take_over(self, transport: asyncio.Transport) -> None:
        """Continue the connection an AgentSession accepted; open the session (HELLO)."""
        self.transport = transport
        transport.set_protocol(self)
        self.relay.node_peers.add(self)
        s = self.relay.settings
        me = s.cluster.node_id if s.cluster else ""
        self.wire.hello(p.Hello(p.VERSION, me, "", "", s.window, {"node": True}))
        self.flush()
        self.start_heartbeat(s.ping_interval, s.ping_timeout)

    def on_frame(self, frame: p.Frame) -> None:
        if type(frame) is p.Open:
            self._open(frame)
        # WELCOME opens the session; GOAWAY: the other node stops, its streams end on their own

    def _open(self, frame: p.Open) -> None:
        stream = self.wire.streams.get(frame.stream)
        if stream is None:
            return  # opened and reset in one message
        name, _, client = frame.client_host.partition("/")
        agent = self.relay.tunnels.get(name)
        near, far = splice(self, stream, client, frame.client_port)
        self.streams[frame.stream] = near
        why = ""
        if label_problem(name) is not None or not client:
            code, why = "bad_open", "a node link's OPEN names NAME/CLIENT"
        elif agent is None or agent.protocol != "http":
            # moved or gone since the other node looked: its visitor gets the "offline" page
            code, why = "session_lost", f"the tunnel '{name}' is not on this node"
        elif not agent.attach(far):
            code, why = "session_lost", f"the tunnel '{name}' takes no more streams"
        if why:
            far.finished = True  # never bound to an agent: nothing to reset there
            near.reset(code, why)
        elif (node := self.relay.node) is not None:
            node.received[self.peer_id] = node.received.get(self.peer_id, 0) + 1
        self._schedule()

    def on_close(self, reason: str) -> None:
        self.relay.node_peers.discard(self)
        for end in list(self.streams.values()):
            end.on_reset("session_lost", reason)
        self.streams.clear()
