"""The tunnel agent: keeps a websocket to the relay and bridges each stream to the local app."""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from collections.abc import Callable
from typing import Any

from websockets.client import ClientProtocol
from websockets.http11 import Response
from websockets.uri import parse_uri

from relay.agent.connect_errors import NotAnAgentEndpoint, Unreachable, describe
from relay.agent.local import LocalDial
from relay.agent.observe import ExchangeObserver
from relay.agent.relay_text import BadWelcome, check_welcome, printable
from relay.agent.settings import DEFAULT_RELAY as DEFAULT_RELAY  # re-exported: it lived here
from relay.agent.settings import AgentSettings
from relay.agent.tcp import TcpConnection, TcpLedger
from relay.events import (
    AgentEvent,
    Reconnected,
    Reconnecting,
    RequestRecord,
    TunnelClosed,
    TunnelOpen,
    TunnelRefused,
)
from relay.transport.dial import dial
from relay.transport.link import FrameLink
from relay.wire import codec as p
from relay.wire.session import Phase, Session, Side

# Refusals that say "not now", retried with the backoff (any other stops the agent): a cluster
# whose store is away for a moment, a node that lost its name's lease (it may be elsewhere now).
RETRYABLE_REFUSALS = frozenset({"cluster_unavailable", "lease_lost"})
BUSY = "the agent has as many connections to the local app open as it allows (max_streams)"


class Refused(Exception):
    """The relay refused the tunnel; retrying will not help (unless its code is retryable)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class LocalConnection(LocalDial):
    """One stream's connection to the local app, observed for the request log."""

    def __init__(self, link: AgentLink, sid: int, client: str) -> None:
        s = link.agent.settings
        super().__init__(link, sid)
        self.observer = ExchangeObserver(
            client, sid, link.agent.record, s.capture_bytes, s.local, s.message_cap
        )

    def write(self, data: bytes) -> None:
        super().write(data)
        self.observer.request_bytes(data)  # after the write: off the request's path

    def connected(self) -> None:
        self.observer.connected()

    def tls(self) -> ssl.SSLContext | None:
        return self.agent_link.agent.local_ssl

    def dial_failed(self, exc: OSError, timeout: float) -> None:
        _, why = self.observer.dial_failed(exc, timeout)
        self.reset("connect_failed", f"The {why}.")

    # The response side is observed after the link's flush: parsing and logging a response
    # then happen after it has left, not before. Every observer call on this side goes through
    # after_flush, so the observer sees them in their order.

    def data_received(self, data: bytes) -> None:
        self.forward(data)
        self.agent_link.after_flush(self.observer.response_bytes, data)

    def eof_received(self) -> bool:
        self.agent_link.after_flush(self.observer.response_eof)
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.agent_link.after_flush(self.observer.lost, exc)
        super().connection_lost(exc)

    def on_reset(self, code: str, message: str) -> None:
        self.agent_link.after_flush(self.observer.close)
        super().on_reset(code, message)


class AgentLink(FrameLink):
    """The agent's end of the websocket."""

    def __init__(self, agent: Agent, ws: ClientProtocol) -> None:
        super().__init__(ws, Session(Side.AGENT, agent.settings.window))
        self.agent = agent
        self.streams: dict[int, LocalConnection | TcpConnection] = {}
        self.handshake: asyncio.Future[Response] = self.loop.create_future()
        self.welcome: asyncio.Future[p.Welcome] = self.loop.create_future()
        self.goaway = ""
        self.refusal: Refused | None = None
        self.bad_welcome = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        ws = self.ws
        assert isinstance(ws, ClientProtocol)
        ws.send_request(ws.connect())
        self._write_ws()

    def on_handshake(self, event: Any) -> None:
        if isinstance(event, Response) and not self.handshake.done():
            if event.status_code == 101 and self.ws.handshake_exc is None:
                self.handshake.set_result(event)
            else:
                self.handshake.set_exception(NotAnAgentEndpoint.from_response(event))

    def on_frame(self, frame: p.Frame) -> None:
        # The session checked the order and the stream ids; here each event meets its handler.
        if type(frame) is p.Open:
            self._open(frame)
        elif type(frame) is p.Welcome:
            if not self.welcome.done():
                try:
                    check_welcome(frame, self.agent.settings.protocol)
                except BadWelcome as exc:
                    self.bad_welcome = True  # OPENs in the same message reach no local app
                    self.welcome.set_exception(exc)
                    return
                self.welcome.set_result(frame)
        elif type(frame) is p.Error:
            # The relay's words reach the terminal, the dashboard and --json: spelled out.
            refusal = Refused(printable(frame.code, 64), printable(frame.message))
            if not self.welcome.done():
                self.welcome.set_exception(refusal)
            else:
                self.refusal = refusal  # e.g. the token was revoked: do not come back
        elif type(frame) is p.GoAway:
            self.goaway = printable(frame.reason) or "no reason given"

    def _open(self, frame: p.Open) -> None:
        if frame.stream not in self.wire.streams or self.bad_welcome:
            return  # opened and reset in one message: the visitor is already gone
        settings = self.agent.settings
        if len(self.streams) >= settings.max_streams:
            # Each stream is a local socket and up to a window of bytes: a relay that opens
            # more than the agent's limit gets a RESET for the rest, not our descriptors.
            self.reset_stream(self.wire.streams[frame.stream], "agent_busy", BUSY)
            return
        client = printable(frame.client_host, 100)  # the relay's word for it: shown later
        conn: LocalConnection | TcpConnection
        if settings.protocol == "tcp":  # no HTTP in it: piped, not observed
            conn = TcpConnection(self, frame.stream, f"{client}:{frame.client_port}")
        else:
            conn = LocalConnection(self, frame.stream, client)
        self.streams[frame.stream] = conn
        self.loop.create_task(conn.connect())

    def leave(self, reason: str) -> None:
        """Stop on purpose: GOAWAY first, so the relay frees the name at once (a link that
        is merely lost keeps it held for our resume token), then a clean close."""
        if self.wire.phase is Phase.OPEN and not self.wire.goaway_sent:
            self.wire.go_away(reason)
        self.close(reason)

    def on_close(self, reason: str) -> None:
        for fut in (self.handshake, self.welcome):
            if not fut.done():
                fut.set_exception(ConnectionError(reason))
                fut.exception()  # nobody may be waiting any more: mark it seen
        for conn in list(self.streams.values()):
            conn.on_reset("session_lost", reason)
        self.streams.clear()


class Agent:
    """Keeps one tunnel up: connects, reconnects with backoff, reports events."""

    def __init__(
        self,
        settings: AgentSettings,
        on_event: Callable[[AgentEvent], None] = lambda event: None,
    ) -> None:
        self.settings = settings
        self.on_event = on_event
        self.link: AgentLink | None = None
        self.name = settings.name
        self.url = ""
        self.resume = settings.resume
        self.state = "stopped"  # stopped, connecting, online, reconnecting, error
        self.last_error = ""
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._online = asyncio.Event()
        self.local_ssl = settings.local_ssl()  # built once: each one loads the system CAs
        self.tcp = TcpLedger()  # a TCP tunnel's connections, open and recent

    @property
    def rtt(self) -> float | None:
        """The latest relay round-trip time in seconds, from the heartbeat."""
        return self.link.rtt if self.link is not None else None

    def record(self, record: RequestRecord) -> None:
        self.on_event(record)

    async def wait_online(self) -> None:
        await self._online.wait()

    async def run(self) -> None:
        """Run until stopped; raises Refused if the relay refuses the tunnel."""
        attempt = 0
        ever_online = False
        started = time.monotonic()
        self.state = "connecting"
        while not self._stopping:
            try:
                link, welcome = await self._connect()
            except Refused as exc:
                if exc.code in RETRYABLE_REFUSALS and not self._stopping:
                    self.state = "reconnecting" if ever_online else "connecting"
                    attempt += 1
                    delay = self._backoff(attempt)
                    self.last_error = f"the relay says: {exc.message}; trying again"
                    self.on_event(
                        Reconnecting(self.name, self.last_error, attempt, round(delay, 3))
                    )
                    await self._pause(delay)
                    continue
                self.state = "error"
                self.last_error = exc.message
                self.on_event(TunnelRefused(self.name, exc.code, exc.message))
                raise
            except (OSError, TimeoutError, ConnectionError, p.ProtocolError) as exc:
                if self._stopping:
                    break
                attempt += 1
                delay = self._backoff(attempt)
                self.state = "reconnecting" if ever_online else "connecting"
                self.last_error = describe(exc, self.settings.relay)
                if not ever_online and (waited := self._give_up(exc, started, delay)):
                    self.state = "error"
                    raise Unreachable(self.last_error, waited[0]) from exc
                self.on_event(Reconnecting(self.name, self.last_error, attempt, round(delay, 3)))
                await self._pause(delay)
                continue
            if self._stopping:
                link.leave("agent stopped")
                break
            self.link = link
            self.name, self.url, self.resume = welcome.name, welcome.url, welcome.resume
            self.state = "online"
            self._online.set()
            if ever_online:
                self.on_event(Reconnected(self.name, self.url, attempt))
            else:
                self.on_event(TunnelOpen(self.name, self.url, self.settings.local))
            ever_online = True
            attempt = 0
            reason = await link.closed
            self._online.clear()
            self.link = None
            if self._stopping:
                break
            if link.refusal is not None and link.refusal.code not in RETRYABLE_REFUSALS:
                self.state = "error"
                self.last_error = link.refusal.message
                self.on_event(TunnelRefused(self.name, link.refusal.code, link.refusal.message))
                raise link.refusal
            if link.goaway:
                reason = f"relay going away: {link.goaway}"
            elif link.refusal is not None:
                reason = f"the relay says: {link.refusal.message}"
            attempt = 1
            delay = self._backoff(attempt)
            self.state = "reconnecting"
            self.last_error = reason
            self.on_event(Reconnecting(self.name, reason, attempt, round(delay, 3)))
            await self._pause(delay)
        self.state = "stopped"
        self.on_event(TunnelClosed(self.name, "stopped"))

    async def _pause(self, delay: float) -> None:
        """Sleep before a retry, but wake at once when stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested.wait(), delay)

    def _give_up(
        self, exc: BaseException, started: float, delay: float
    ) -> tuple[float | None] | None:
        """Whether a first connection that failed with ``exc`` should stop trying: a 1-tuple
        holding the seconds spent (None when no retry could help), or None to go on.

        Only a first connection gives up: a wrong URL or a relay that is not there is a
        mistake to report; a tunnel that was online keeps coming back, however long it takes.
        """
        limit = self.settings.give_up_after
        if limit is None:
            return None
        if isinstance(exc, NotAnAgentEndpoint) and exc.status < 500:
            return (None,)  # something else answers there; only a 5xx (a proxy) may pass
        waited = time.monotonic() - started
        return (waited,) if waited + delay > limit else None

    def _backoff(self, attempt: int) -> float:
        s = self.settings
        return min(s.backoff_max, s.backoff_first * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    async def _connect(self) -> tuple[AgentLink, p.Welcome]:
        s = self.settings
        uri = parse_uri(s.relay)
        context = ssl.create_default_context(cafile=s.ca_file) if uri.secure else None
        link: AgentLink | None = None

        def factory() -> AgentLink:
            nonlocal link
            link = AgentLink(self, ClientProtocol(uri, max_size=p.MAX_MESSAGE))
            return link

        async with asyncio.timeout(s.connect_timeout):
            await dial(factory, uri.host, uri.port, context, s.address)
            assert link is not None
            try:
                await link.handshake
                hello = p.Hello(p.VERSION, self.name, s.token, self.resume, s.window, s.options())
                link.wire.hello(hello)
                link.flush()
                welcome = await link.welcome
            except BadWelcome as exc:
                # Not a molehill relay's answer: shown nowhere, written nowhere; retrying the
                # same relay would only get it again.
                link.fail("bad welcome")
                raise Refused("bad_welcome", f"the relay's welcome is not valid: {exc}") from None
            except BaseException:
                link.fail("handshake failed")
                raise
        interval = s.ping_interval or welcome.ping_interval
        link.start_heartbeat(interval, s.ping_timeout or max(welcome.ping_interval * 3, interval))
        return link, welcome

    @property
    def stopping(self) -> bool:
        """Whether stop() was called (run() returns, or will not start a connection)."""
        return self._stopping

    def stop(self) -> None:
        """Close the tunnel; run() returns soon after."""
        self._stopping = True
        self._stop_requested.set()
        if self.link is not None:
            self.link.leave("agent stopped")
