"""The relay's side of one agent's websocket: the tunnel's streams and their frames."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from websockets.http11 import Request
from websockets.server import ServerProtocol

from relay.server.access import AccessRules, TokenBucket
from relay.transport.link import FrameLink
from relay.wire import codec as p

if TYPE_CHECKING:
    from relay.server import Relay
    from relay.server.public import PublicConnection

log = logging.getLogger("molehill.relay")


class AgentSession(FrameLink):
    """One agent connection. It carries one tunnel once its HELLO is accepted."""

    def __init__(self, relay: Relay) -> None:
        cap = relay.settings.max_message
        super().__init__(ServerProtocol(max_size=cap))
        self.decoder = p.FrameDecoder(cap)
        self.relay = relay
        self.token_label = ""  # the label of the token this agent presented, if any
        self.rules = AccessRules()
        self.bucket: TokenBucket | None = None
        self.handshake_done = False  # a websocket (not a health check or a scrape)
        self.name: str | None = None
        self.resume = ""
        self.peer = ""
        self.streams: dict[int, PublicConnection] = {}
        self.next_sid = 1
        self.agent_window = p.DEFAULT_WINDOW
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
        response = self.relay.http_on_agent_port(event)
        if response is None:
            response = ws.accept(event)
        ws.send_response(response)

    def on_frame(self, frame: p.Frame) -> None:
        if type(frame) is p.Data:
            conn = self.streams.get(frame.stream)
            if conn is not None:
                conn.on_data(frame.data)
            else:
                self._check_known(frame.stream)
        elif type(frame) is p.Credit:
            conn = self.streams.get(frame.stream)
            if conn is not None:
                conn.on_credit(frame.amount)
            else:
                self._check_known(frame.stream)
        elif type(frame) is p.End or type(frame) is p.Reset:
            conn = self.streams.get(frame.stream)
            if conn is None:
                self._check_known(frame.stream)
            elif type(frame) is p.End:
                conn.on_end()
            else:
                conn.on_reset(frame.code, frame.message)  # type: ignore[union-attr]
        elif type(frame) is p.Ping or type(frame) is p.Pong:
            self.answer_ping(frame)
        elif type(frame) is p.Hello and self.name is None:
            if self._hello_timer is not None:
                self._hello_timer.cancel()
            self.relay.admit(self, frame)
        else:
            raise p.ProtocolError(f"unexpected {type(frame).__name__} frame from an agent")

    def _check_known(self, sid: int) -> None:
        # Frames for a stream we closed a moment ago are normal; for one never opened, hostile.
        if sid >= self.next_sid:
            raise p.ProtocolError(f"frame for stream {sid}, which was never opened")

    @property
    def checks(self) -> bool:
        """Whether requests on this tunnel need per-request checks (rules or a rate limit)."""
        return self.rules.any or self.bucket is not None

    def welcome(self, name: str, resume: str, hello: p.Hello) -> None:
        self.name = name
        self.resume = resume
        # The relay sends at most this much per stream before the agent grants more: trust the
        # agent's wish only up to a bound, or one that stops reading makes the relay buffer it.
        self.agent_window = min(hello.window, self.relay.settings.window * 4)
        s = self.relay.settings
        self.send(
            p.Welcome(name, self.relay.public_url(name), resume, s.lease, s.ping_interval, s.window)
        )
        self.start_heartbeat(s.ping_interval, s.ping_timeout)

    def refuse(self, code: str, message: str) -> None:
        self.relay.log_event("agent_refused", code=code, peer=self.peer, name=self.name)
        self.send(p.Error(code, message))
        self.close(f"refused: {code}", code=1008)

    # -- streams ------------------------------------------------------------------

    def attach(self, conn: PublicConnection) -> bool:
        """Give a visitor connection a stream on this tunnel and tell the agent."""
        if len(self.streams) >= self.relay.settings.streams_per_agent:
            return False
        sid = self.next_sid
        self.next_sid += 1
        window = self.relay.settings.window
        conn.link = self
        conn.sid = sid
        conn.send_credit = self.agent_window
        conn.block_reading(self.blocked)
        conn.recv_allowed = window
        conn.grant_at = max(window // 4, 1)
        self.streams[sid] = conn
        self.send(p.Open(sid, conn.client_ip, conn.client_port))
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
