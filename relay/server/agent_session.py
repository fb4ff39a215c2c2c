"""The relay's side of one agent's websocket: the tunnel's streams and their frames."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from websockets.http11 import Request
from websockets.server import ServerProtocol

from relay.server.access import AccessRules, TokenBucket
from relay.server.admission import release
from relay.transport.link import FrameLink
from relay.wire import codec as p
from relay.wire.session import HELLO_MAX, Phase, Session, Side

if TYPE_CHECKING:
    from relay.server import Relay
    from relay.server.public import PublicConnection
    from relay.server.splice import SpliceEnd
    from relay.server.tcp_listener import TcpVisitor

log = logging.getLogger("molehill.relay")


class AgentSession(FrameLink):
    """One agent connection. It carries one tunnel once its HELLO is accepted."""

    def __init__(self, relay: Relay) -> None:
        cap = relay.settings.max_message
        # Until the HELLO is accepted, a message may hold a HELLO and no more: an unknown peer
        # costs a few KiB, whatever it claims to send.
        super().__init__(
            ServerProtocol(max_size=HELLO_MAX),
            Session(Side.RELAY, relay.settings.window, max_message=cap),
        )
        self.relay = relay
        self.token_label = ""  # the label of the token this agent presented, if any
        self.rules = AccessRules()
        self.bucket: TokenBucket | None = None
        self.handshake_done = False  # a websocket (not a health check or a scrape)
        self.name: str | None = None
        self.protocol = "http"  # or "tcp": a tunnel of raw TCP connections on its own port
        self.resume = ""
        self.policy = "{}"  # its per-request options as JSON, for the other nodes of a cluster
        self.links = False  # the agent holds its name through other nodes too (HELLO "links")
        self.peer = ""
        self.streams: dict[int, PublicConnection | TcpVisitor | SpliceEnd] = {}
        self.client_streams: dict[str, int] = {}  # streams per client address (public.py counts)
        self._hello_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.peer = f"{peer[0]}:{peer[1]}"
        self.relay.sessions.add(self)
        self._hello_timer = self.loop.call_later(self.relay.settings.hello_timeout, self._no_hello)

    def on_open(self) -> None:
        self.handshake_done = True

    def _no_hello(self) -> None:
        if self.name is None:
            self.fail("no HELLO in time")

    def on_handshake(self, event: Any) -> None:
        assert isinstance(event, Request)
        ws = self.ws
        assert isinstance(ws, ServerProtocol)
        node = self.relay.node
        peer = node.link_request(event) if node is not None else None
        if isinstance(peer, str):  # another node of the cluster, with the secret
            self._become_node_link(event, peer)
            return
        response = peer or self.relay.http_on_agent_port(event)
        if response is None:
            response = ws.accept(event)
        ws.send_response(response)

    def _become_node_link(self, request: Request, peer: str) -> None:
        """Hand this connection to a NodePeer: it carries another node's visitors' streams."""
        from relay.server.node_peer import NodePeer

        ws = self.ws
        node = self.relay.node
        assert isinstance(ws, ServerProtocol) and node is not None and self.transport is not None
        response = ws.accept(request)
        key, value = node.reply_header(request)
        response.headers[key] = value
        ws.send_response(response)
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        self.relay.sessions.discard(self)
        # Anything after the request in this read is dropped: the other node waits for our
        # HELLO before it sends a frame.
        self.wire.phase = Phase.CLOSED
        NodePeer(self.relay, ws, peer).take_over(self.transport)

    def on_frame(self, frame: p.Frame) -> None:
        # The session lets through only what may come now: the one HELLO, then the agent's
        # GOAWAY when it stops on purpose.
        if type(frame) is p.Hello:
            if self._hello_timer is not None:
                self._hello_timer.cancel()
            self.relay.admit(self, frame)
        elif type(frame) is p.GoAway:
            release(self.relay, self, frame.reason)

    @property
    def checks(self) -> bool:
        """Whether requests on this tunnel need per-request checks (rules or a rate limit)."""
        return self.rules.any or self.bucket is not None

    def welcome(self, name: str, resume: str, hello: p.Hello) -> None:
        self.name = name
        self.resume = resume
        s = self.relay.settings
        # The relay sends at most this much per stream before the agent grants more: trust the
        # agent's wish only up to a bound, or one that stops reading makes the relay buffer it.
        agent_window = min(hello.window, s.window * 4)
        relay = self.relay
        url = relay.tcp.url(name) if self.protocol == "tcp" else relay.public_url(name)
        welcome = p.Welcome(name, url, resume, s.lease, s.ping_interval, s.window)
        self.wire.welcome(welcome, agent_window)
        self.ws.max_message_size = s.max_message
        self.flush()
        self.start_heartbeat(s.ping_interval, s.ping_timeout)

    def refuse(self, code: str, message: str) -> None:
        self.relay.log_event("agent_refused", code=code, peer=self.peer, name=self.name)
        self.wire.refuse(code, message)
        self.close(f"refused: {code}", code=1008)

    # -- streams ------------------------------------------------------------------

    def attach(self, conn: PublicConnection | TcpVisitor | SpliceEnd, client: str = "") -> bool:
        """Give a visitor connection a stream on this tunnel and tell the agent.

        ``client`` is the visitor's address when a trusted proxy carried the request: the
        agent's log then shows the visitor, not the proxy (its port is not known: 0).
        """
        if len(self.streams) >= self.relay.settings.streams_per_agent or self.name is None:
            return False
        if self.wire.goaway_received:
            return False  # the agent is leaving (a visitor routed to it a moment before)
        if client and client != conn.client_ip:
            stream = self.wire.open_stream(client, 0)
        else:
            stream = self.wire.open_stream(conn.client_ip, conn.client_port)
        self.streams[stream.id] = conn
        conn.bind(self, stream)
        self._schedule()
        return True

    def detach(self, sid: int) -> None:
        self.streams.pop(sid, None)

    def on_close(self, reason: str) -> None:
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        if reason.startswith("protocol error") or reason.startswith("heartbeat"):
            self.relay.log_event("agent_dropped", name=self.name, peer=self.peer, reason=reason)
        self.relay.session_closed(self, reason)
        for conn in list(self.streams.values()):
            try:
                conn.on_reset("session_lost", reason)
            except Exception:  # one broken stream must not leave the others hanging
                log.exception("resetting stream %s of %s", conn.sid, self.name)
                if conn.transport is not None:
                    conn.transport.abort()
        self.streams.clear()
