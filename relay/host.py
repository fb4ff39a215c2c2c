"""Runs tunnels, and an embedded relay when none is configured, on a thread of their own.

The dashboard must never slow a tunnel down: agents and the embedded relay live on a background
thread with its own event loop, and the UI only ever takes batches from here (``drain``) a few
times a second. Control calls (start/stop a tunnel) are handed to that loop thread-safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from relay.agent import AgentSettings, Refused
from relay.agent.addresses import expand
from relay.agent.links import AnyAgent, LinkedAgent, agent_for, links_summary
from relay.agent.resume_store import ResumeStore
from relay.events import (
    AgentEvent,
    ConnectionRecord,
    Reconnected,
    RequestRecord,
    TunnelOpen,
    TunnelRefused,
)
from relay.probe import FoundRelay, find_relay
from relay.server import Relay, RelaySettings
from relay.server.tcp_ports import PortRange
from relay.stats import StatsSnapshot, TunnelStats
from relay.transport.runtime import new_event_loop

PUBLISH_EVERY = 0.25  # seconds between status snapshots


@dataclass(frozen=True, slots=True)
class TunnelStatus:
    """One tunnel as the UI shows it."""

    key: str
    state: str  # stopped, connecting, online, reconnecting, error
    name: str
    url: str
    local: str
    error: str
    rtt_ms: float | None
    open_streams: int
    stats: StatsSnapshot
    tcp: TcpFigures | None = None  # a TCP tunnel's connections and throughput
    app: str = ""  # the state of the profile's command, if it has one ("ready since 12:03")
    links: str = ""  # a tunnel with several links: how many are up, which are down


@dataclass(frozen=True, slots=True)
class TcpFigures:
    """A TCP tunnel's connections (ever, open), bytes moved and live throughput (bytes/s)."""

    total: int
    open: int
    bytes_in: int
    bytes_out: int
    rate_in: float
    rate_out: float


@dataclass
class HostUpdate:
    """Everything that happened since the last drain."""

    records: dict[str, list[RequestRecord]] = field(default_factory=dict)
    events: list[tuple[str, AgentEvent]] = field(default_factory=list)
    statuses: dict[str, TunnelStatus] = field(default_factory=dict)


class _Tunnel:
    def __init__(self, key: str, agent: AnyAgent) -> None:
        self.key = key
        self.agent = agent
        self.stats = TunnelStats()
        self.task: asyncio.Task[None] | None = None


class TunnelHost:
    """Owns the background thread. Use ``start()`` / ``stop()`` from the UI thread."""

    def __init__(
        self,
        relay_url: str | tuple[str, ...] | None = None,
        token: str = "",
        embedded: RelaySettings | None = None,
        capture_bytes: int = 64 * 1024,
        look_for_relay: str | None = None,
        resume_store: ResumeStore | None = None,
        record_sink: Callable[[str, RequestRecord], None] | None = None,
        message_cap: int = 1000,
    ) -> None:
        """``look_for_relay``: with no ``relay_url``, use the molehill relay answering at this
        agents' URL, if one does, before starting an embedded one. ``record_sink(key, record)``
        is given every HTTP exchange on the tunnel thread (the dashboard's capture store); it
        must not block. ``relay_url``: one URL, or several (a link through each: the nodes of
        one cluster; a TCP tunnel uses the first)."""
        self.record_sink = record_sink
        urls = (relay_url,) if isinstance(relay_url, str) else relay_url or ()
        self.relay_url = urls[0] if urls else ""
        self.more_relays = tuple(urls[1:])
        self.look_for_relay = look_for_relay
        self.found: FoundRelay | None = None  # the relay look_for_relay found running
        self.relay_note = ""  # why the embedded relay is not where it was asked to be
        self.resume_store = resume_store or ResumeStore()
        self.token = token
        # TCP ports too: loopback only, and bound only when a tcp profile starts.
        self.embedded_settings = embedded or RelaySettings(
            http_port=8080, agents_port=0, tcp_ports=PortRange(20000, 20999)
        )
        self.embedded: Relay | None = None
        self.capture_bytes = capture_bytes
        self.message_cap = message_cap  # WebSocket messages / SSE events kept per connection
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._tunnels: dict[str, _Tunnel] = {}
        self._lock = threading.Lock()
        self._records: dict[str, list[RequestRecord]] = {}
        self._events: list[tuple[str, AgentEvent]] = []
        self._statuses: dict[str, TunnelStatus] = {}
        self._stopped: asyncio.Event | None = None
        # Hooks for what runs alongside tunnels (a profile's command), called on the tunnel thread.
        self.on_tunnel_start: Callable[[str], None] | None = None
        self.on_tunnel_stop: Callable[[str], None] | None = None
        self.on_tunnel_url: Callable[[str, str], None] | None = None
        self.on_shutdown: Callable[[], Awaitable[None]] | None = None
        self.describe_app: Callable[[str], str] | None = None
        self.shutdown_grace = 0.0  # how much longer stop() waits for on_shutdown

    # -- UI thread -----------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Start the thread (and the embedded relay); raise if the relay cannot listen."""
        self._thread = threading.Thread(target=self._main, name="molehill-tunnels", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the tunnel thread did not start")
        if self._startup_error is not None:
            raise self._startup_error

    @property
    def uses_embedded_relay(self) -> bool:
        return self.embedded is not None

    def start_tunnel(self, key: str, settings: AgentSettings) -> None:
        self._call(self._start_tunnel, key, settings)

    def stop_tunnel(self, key: str) -> None:
        self._call(self._stop_tunnel, key)

    def restart_tunnel(self, old_key: str, key: str, settings: AgentSettings) -> None:
        """Stop ``old_key``'s tunnel (a deliberate stop: its name is free at once), wait until
        it is down, then start ``key`` with ``settings``: an edited profile's new settings."""
        assert self.loop is not None, "start() first"
        asyncio.run_coroutine_threadsafe(self._restart_tunnel(old_key, key, settings), self.loop)

    def drain(self) -> HostUpdate:
        """Take the records and events gathered since the last call, and the latest statuses."""
        with self._lock:
            records, self._records = self._records, {}
            events, self._events = self._events, []
            statuses = self._statuses
        return HostUpdate(records, events, statuses)

    def stop(self, timeout: float = 5.0) -> None:
        if self.loop is None or self._thread is None:
            return
        if self._stopped is not None:
            self.loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout + self.shutdown_grace)

    def submit(self, coro: Coroutine[Any, Any, Any]) -> Future[Any]:
        """Run ``coro`` on the tunnel thread's loop."""
        assert self.loop is not None, "start() first"
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def _call(self, fn: object, *args: object) -> None:
        assert self.loop is not None, "start() first"
        self.loop.call_soon_threadsafe(fn, *args)  # type: ignore[arg-type]

    # -- tunnel thread ---------------------------------------------------------------------------

    def _main(self) -> None:
        loop = new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        try:
            if not self.relay_url and self.look_for_relay:
                self.found = await find_relay(self.look_for_relay)
                if self.found is not None:
                    self.relay_url = self.found.agents_url
            if not self.relay_url:
                wished = self.embedded_settings.http_port
                self.embedded = await start_embedded_relay(self.embedded_settings)
                self.relay_url = self.embedded.agents_url
                if wished and self.embedded.http_port != wished:
                    host = self.embedded_settings.http_host
                    self.relay_note = (
                        f"{host}:{wished} is taken by another program; "
                        f"the embedded relay listens on {host}:{self.embedded.http_port} instead"
                    )
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        publisher = asyncio.create_task(self._publish_forever())
        await self._stopped.wait()
        publisher.cancel()
        if self.on_shutdown is not None:
            await self.on_shutdown()
        for tunnel in self._tunnels.values():
            tunnel.agent.stop()
        tasks = [t.task for t in self._tunnels.values() if t.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=3)
        if self.embedded is not None:
            await self.embedded.stop()

    def _start_tunnel(self, key: str, settings: AgentSettings) -> None:
        old = self._tunnels.get(key)
        if old is not None and old.task is not None and not old.task.done():
            return
        if not settings.relay:
            settings.relay = self.relay_url
            if settings.protocol != "tcp":  # a TCP tunnel has one link
                settings.more_relays = self.more_relays
        settings.token = settings.token or self.token
        settings.capture_bytes = self.capture_bytes
        settings.message_cap = self.message_cap
        # A name held for this machine's earlier run (a crash, a lost connection, another front
        # end) comes back with the resume token that run kept.
        # (Not while another tunnel here runs with that name: the store's check of the process
        # that holds a name cannot tell two tunnels of one process apart.)
        if not settings.resume and not self._running_as(settings.name):
            settings.resume = self.resume_store.get(settings.relay, settings.name)
        holder: list[_Tunnel] = []
        agent = agent_for(settings, lambda event: self._on_event(holder[0], event))
        tunnel = _Tunnel(key, agent)
        if old is not None:
            tunnel.stats = old.stats  # a restarted tunnel keeps its figures
        holder.append(tunnel)
        self._tunnels[key] = tunnel
        tunnel.task = asyncio.get_running_loop().create_task(self._run(tunnel))
        if self.on_tunnel_start is not None:
            self.on_tunnel_start(key)

    def _running_as(self, name: str) -> bool:
        return any(
            t.agent.name == name and t.task is not None and not t.task.done()
            for t in self._tunnels.values()
        )

    async def _run(self, tunnel: _Tunnel) -> None:
        agent = tunnel.agent
        # A relay host name resolving to several addresses: a link through each.
        settings = await expand(agent.settings)
        if settings.addresses and not isinstance(agent, LinkedAgent) and not agent.stopping:
            tunnel.agent = agent = LinkedAgent(settings, agent.on_event)
        # A refusal was reported as a TunnelRefused event; the agent stays in the error state.
        with contextlib.suppress(Refused):
            await agent.run()

    def _stop_tunnel(self, key: str) -> None:
        tunnel = self._tunnels.get(key)
        if tunnel is not None:
            tunnel.agent.stop()
        if self.on_tunnel_stop is not None:
            self.on_tunnel_stop(key)

    async def _restart_tunnel(self, old_key: str, key: str, settings: AgentSettings) -> None:
        old = self._tunnels.get(old_key)
        if old is not None:
            old.agent.stop()
            if old.task is not None:
                # Its GOAWAY reaches the relay before the new HELLO: the name is free by then.
                await asyncio.wait({old.task}, timeout=5)
            if old_key != key:
                del self._tunnels[old_key]
        self._start_tunnel(key, settings)

    def _on_event(self, tunnel: _Tunnel, event: AgentEvent) -> None:
        if type(event) is ConnectionRecord:  # the log pane shows a TCP tunnel's connections
            with self._lock:
                self._records.setdefault(tunnel.key, []).append(_as_log_row(event))
            return
        if type(event) is RequestRecord:
            tunnel.stats.add(event)
            if self.record_sink is not None:
                # A failing sink must never stop a tunnel.
                with contextlib.suppress(Exception):
                    self.record_sink(tunnel.key, event)
            with self._lock:
                self._records.setdefault(tunnel.key, []).append(event)
            return
        if isinstance(event, TunnelOpen | Reconnected):
            agent = tunnel.agent  # kept for the next run, whichever front end it is
            self.resume_store.put(agent.settings.relay, agent.name, agent.resume)
            if self.on_tunnel_url is not None:
                self.on_tunnel_url(tunnel.key, agent.url)
        with self._lock:
            self._events.append((tunnel.key, event))
        if isinstance(event, TunnelRefused):
            self._publish()

    async def _publish_forever(self) -> None:
        while True:
            self._publish()
            await asyncio.sleep(PUBLISH_EVERY)

    def _publish(self) -> None:
        statuses = {}
        for key, tunnel in self._tunnels.items():
            agent = tunnel.agent
            link = agent.link
            statuses[key] = TunnelStatus(
                key=key,
                state=agent.state,
                name=agent.name,
                url=agent.url,
                local=agent.settings.local,
                error=agent.last_error if agent.state != "online" else "",
                rtt_ms=agent.rtt * 1000 if agent.rtt is not None else None,
                open_streams=len(link.streams) if link is not None else 0,
                stats=tunnel.stats.snapshot(),
                tcp=_tcp_figures(agent) if agent.settings.protocol == "tcp" else None,
                app=self.describe_app(key) if self.describe_app is not None else "",
                links=links_summary(agent),
            )
        with self._lock:
            self._statuses = statuses


def _tcp_figures(agent: AnyAgent) -> TcpFigures:
    ledger = agent.tcp
    rate_in, rate_out = ledger.throughput()  # sampled each publish: a rolling figure
    moved_in, moved_out = ledger.bytes_moved()
    return TcpFigures(ledger.total, len(ledger.open), moved_in, moved_out, rate_in, rate_out)


async def start_embedded_relay(settings: RelaySettings) -> Relay:
    """Start a loopback relay on the wished-for port, or any free one if it is taken."""
    relay = Relay(settings)
    try:
        await relay.start()
    except OSError:
        settings.http_port = 0
        relay = Relay(settings)
        await relay.start()
    return relay


def _as_log_row(record: ConnectionRecord) -> RequestRecord:
    """A TCP connection as a row of the request log: "TCP", the client and how it closed."""
    return RequestRecord(
        time=record.time,
        method="TCP",
        path=f"{record.client} {record.closed}",
        status=0,
        duration_ms=record.duration_ms,
        bytes_in=record.bytes_in,
        bytes_out=record.bytes_out,
        client=record.client,
        stream=record.stream,
    )
