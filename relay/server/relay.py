"""The relay server: the public HTTP listener, the agents' websocket listener, names and leases."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
import time
from collections.abc import Container, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from relay.cluster import LocalRegistry, NameRegistry
from relay.server.access import in_networks
from relay.server.admission import admit
from relay.server.agent_session import AgentSession
from relay.server.config import load_config
from relay.server.log_budget import LogBudget
from relay.server.metrics import Histogram, render
from relay.server.public import PublicConnection
from relay.server.settings import RelayConfigError, RelaySettings, is_loopback
from relay.server.tcp_listener import TcpTunnels
from relay.wire import codec as p

if TYPE_CHECKING:
    from relay.server.cluster_node import ClusterNode
    from relay.server.node_peer import NodePeer

log = logging.getLogger("molehill.relay")


@dataclass
class Lease:
    """A disconnected agent's name, held for ``resume`` until ``expires`` (monotonic)."""

    resume: str
    expires: float
    timer: asyncio.TimerHandle
    token_label: str = ""


class Relay:
    """Run with ``async with Relay(settings) as relay:``; ports may be 0 (chosen by the OS)."""

    def __init__(self, settings: RelaySettings | None = None) -> None:
        self.settings = settings or RelaySettings()
        self.tunnels: dict[str, AgentSession] = {}
        self.leases: dict[str, Lease] = {}
        self.sessions: set[AgentSession] = set()
        self.public_connections: set[PublicConnection] = set()
        self.tcp = TcpTunnels(self)  # TCP tunnels' ports and connections
        self.registry: NameRegistry = LocalRegistry()  # a RedisRegistry in a cluster (start)
        self.node: ClusterNode | None = None  # this relay as a cluster node, if it is one
        # What visitors are routed by: on one relay, its own dicts; in a cluster, these with
        # the names other nodes hold (relay/server/remote.py).
        self.routes: Mapping[str, Any] = self.tunnels
        self.held: Container[str] = self.leases
        self.node_peers: set[NodePeer] = set()  # links other nodes opened to this one
        self._background: set[asyncio.Task[None]] = set()
        self.requests = 0
        self.errors = 0
        self.responses_by_class: dict[str, int] = {}
        self.bytes_in = 0  # from visitors, of closed connections (open ones are summed live)
        self.bytes_out = 0
        self.durations = Histogram()
        self.per_ip: dict[str, int] = {}
        self.log_budget = LogBudget(self.settings.refusal_log_rate, time.monotonic())
        self.ssl: ssl.SSLContext | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._config_stamp: int | None = None
        self._servers: list[asyncio.Server] = []
        self.http_port = 0
        self.agents_port = 0

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings
        if s.cluster is None:  # a node checks once it has the cluster's shared tokens
            self._check_policy()
        if s.config_path:
            with contextlib.suppress(OSError):
                self._config_stamp = os.stat(s.config_path).st_mtime_ns
        if s.tls_cert and s.tls_key:
            self.ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                self.ssl.load_cert_chain(s.tls_cert, s.tls_key)
            except (OSError, ssl.SSLError) as exc:
                why = getattr(exc, "strerror", None) or str(exc)
                raise RelayConfigError(
                    f"cannot load the TLS certificate {s.tls_cert} with the key {s.tls_key}: {why}"
                ) from None
            if s.public_scheme == "http":
                s.public_scheme = "https"
        if s.cluster is not None:  # before listening: no agent may be admitted by a lone node
            await self._join_cluster()
        try:
            public = await loop.create_server(
                lambda: PublicConnection(self), s.http_host, s.http_port, backlog=1024, ssl=self.ssl
            )
            self._servers = [public]
            agents = await loop.create_server(
                lambda: AgentSession(self), s.agents_host, s.agents_port, backlog=1024, ssl=self.ssl
            )
        except OSError:
            for server in self._servers:
                server.close()
            if self.node is not None:
                await self.node.stop()
            raise
        self._servers = [public, agents]
        if self.node is not None:
            await self.node.registry.announce()
        self.http_port = public.sockets[0].getsockname()[1]
        self.agents_port = agents.sockets[0].getsockname()[1]
        self._sweeper = loop.call_later(1.0, self._sweep)

    def _check_policy(self) -> None:
        s = self.settings
        exposed = [h for h in (s.agents_host,) if not is_loopback(h)]
        if not s.tokens and not s.open and exposed:
            raise RelayConfigError(
                f"the agents' listener is on {s.agents_host}, not loopback, and no agent tokens "
                "are configured: anyone could open tunnels. Add a token "
                "(molehill relay token add LABEL --config FILE) or set open = true in the "
                "config if that is what you want."
            )

    async def _join_cluster(self) -> None:
        from relay.server.cluster_node import ClusterNode  # redis loads only for a cluster

        s = self.settings
        assert s.cluster is not None
        node = ClusterNode(self, s.cluster)
        try:
            await node.start()
        except ConnectionError as exc:
            raise RelayConfigError(f"{exc}; start Redis, or check --cluster") from None
        try:
            self._check_policy()
        except RelayConfigError:
            await node.stop()
            raise
        self.node = node
        self.registry = node.registry
        self.routes, self.held = node.routes, node.held
        self.log_event("cluster_joined", node=s.cluster.node_id)

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task the relay keeps (and waits for when it stops)."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def reload(self) -> str:
        """Re-read the config file's tokens and the TLS files (SIGHUP); return what changed."""
        s = self.settings
        changes = []
        if s.config_path:
            fresh = load_config(s.config_path, s)
            s.tokens = fresh.tokens
            if self.node is not None:
                self.node.set_own_tokens(fresh.tokens)  # with the cluster's shared ones
            changes.append(f"{len(s.tokens)} token(s)")
            self.drop_revoked()
        if self.ssl is not None and s.tls_cert and s.tls_key:
            self.ssl.load_cert_chain(s.tls_cert, s.tls_key)
            changes.append("TLS certificate")
        return ", ".join(changes) or "nothing to reload"

    def drop_revoked(self) -> None:
        """Disconnect the agents whose token is no longer valid (revoked, or removed)."""
        valid = {t.label for t in self.settings.tokens if not t.revoked}
        for session in list(self.sessions):
            if session.token_label and session.token_label not in valid:
                session.refuse("token_revoked", "the token of this tunnel was revoked")
                self.log_event("token_revoked", name=session.name, token=session.token_label)

    def _sweep(self) -> None:
        """Once a second: close idle visitor connections; pick up a changed config file."""
        self._watch_config()
        for held in self.log_budget.summary(time.monotonic()):
            self.log_event("log_suppressed", **held)
        timeout = self.settings.idle_timeout
        if timeout:
            deadline = time.monotonic() - timeout
            for conn in [c for c in self.public_connections if c.last_active < deadline]:
                conn.idle_out()
        self.tcp.sweep()
        self._sweeper = asyncio.get_running_loop().call_later(1.0, self._sweep)

    def _watch_config(self) -> None:
        path = self.settings.config_path
        if not path:
            return
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            return
        if self._config_stamp is None:
            self._config_stamp = stamp
        elif stamp != self._config_stamp:
            self._config_stamp = stamp
            try:
                what = self.reload()
            except Exception as exc:  # a half-edited file must not stop the relay
                self.log_event("reload_failed", error=str(exc))
            else:
                self.log_event("reloaded", what=what)

    def log_event(self, event: str, **fields: object) -> None:
        """One structured line per agent session event (text or JSON, per log_format); lines
        that visitors cause at will are held to ``refusal_log_rate`` (relay/server/log_budget)."""
        reason = fields.get("rule") or fields.get("code") or fields.get("reason")
        if not self.log_budget.allow(event, str(reason or ""), time.monotonic()):
            return
        fields = {k: v for k, v in fields.items() if v is not None}
        if self.settings.log_format == "json":
            log.info(json.dumps({"event": event, **fields}, default=str))
        else:
            log.info(" ".join([event, *(f"{k}={v}" for k, v in fields.items())]))

    def count_address(self, ip: str) -> int:
        """One more open public connection (HTTP or TCP) from ``ip``; how many it has now."""
        count = self.per_ip.get(ip, 0) + 1
        self.per_ip[ip] = count
        return count

    def uncount_address(self, ip: str) -> None:
        left = self.per_ip.get(ip, 1) - 1
        if left > 0:
            self.per_ip[ip] = left
        else:
            self.per_ip.pop(ip, None)

    def trusted(self, ip: str) -> bool:
        proxies = self.settings.trusted_proxies
        return bool(proxies) and in_networks(ip, proxies)

    @property
    def agents_url(self) -> str:
        return f"ws://{self.settings.agents_host}:{self.agents_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.http_host}:{self.http_port}"

    async def stop(self) -> None:
        """Stop listening, tell agents, let open streams finish briefly, then reset the rest."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for server in self._servers:
            server.close()
        for session in list(self.sessions):
            if session.name is not None:
                session.wire.go_away("relay shutting down")
                session.flush()
        deadline = time.monotonic() + self.settings.shutdown_grace
        while self.public_connections and time.monotonic() < deadline:
            busy = [c for c in self.public_connections if c.session is not None]
            if not busy:
                break
            await asyncio.sleep(0.05)
        for conn in list(self.public_connections):
            if conn.transport is not None:
                conn.transport.abort()
        self.tcp.close()
        for session in list(self.sessions):
            session.close("relay shutting down", code=1001)
        for lease in self.leases.values():
            lease.timer.cancel()
        self.leases.clear()
        if self.sessions:
            await asyncio.wait([s.closed for s in self.sessions], timeout=2.0)
        if self._background:
            await asyncio.wait(self._background, timeout=2.0)
        for peer in list(self.node_peers):
            peer.close("relay shutting down", code=1001)
        if self.node is not None:
            await self.node.stop()
        for server in self._servers:
            await server.wait_closed()

    async def __aenter__(self) -> Relay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def count_response(self, status: int) -> None:
        klass = f"{status // 100}xx"
        self.responses_by_class[klass] = self.responses_by_class.get(klass, 0) + 1

    # -- names ------------------------------------------------------------------

    def public_url(self, name: str) -> str:
        s = self.settings
        port = s.public_port if s.public_port is not None else self.http_port
        default = 443 if s.public_scheme == "https" else 80
        suffix = "" if port == default else f":{port}"
        return f"{s.public_scheme}://{name}.{s.domain}{suffix}"

    def admit(self, session: AgentSession, hello: p.Hello) -> None:
        admit(self, session, hello)

    def session_closed(self, session: AgentSession, reason: str) -> None:
        self.sessions.discard(session)
        name = session.name
        if name is None or self.tunnels.get(name) is not session:
            return
        del self.tunnels[name]
        lease_s = self.settings.lease
        timer = asyncio.get_running_loop().call_later(lease_s, self._expire, name, session.resume)
        self.leases[name] = Lease(
            session.resume, time.monotonic() + lease_s, timer, session.token_label
        )
        self.registry.hold(name, session.token_label, session.resume)
        self.log_event("tunnel_offline", name=name, reason=reason, held_for=lease_s)

    def _expire(self, name: str, resume: str) -> None:
        lease = self.leases.get(name)
        if lease is not None and lease.resume == resume:
            del self.leases[name]
            self.tcp.release(name)
            self.log_event("lease_expired", name=name)

    # -- plain HTTP on the agents' port ------------------------------------------------------------

    def http_on_agent_port(self, request: Request) -> Response | None:
        """Answer non-websocket requests on the agents' listener (health checks)."""
        if request.path == "/healthz":
            # The headers let a dashboard recognise a molehill relay (relay/probe.py) and
            # say where its tunnels live, rather than start a second relay beside it.
            health = _text_response(200, "ok\n")
            health.headers["X-Molehill-Relay"] = str(p.VERSION)
            health.headers["X-Molehill-Tunnels"] = self.public_url("NAME")
            return health
        if request.path == "/metrics":
            return _text_response(200, render(self), "text/plain; version=0.0.4")
        # Connection may come as several header lines (RFC 9110 5.3); Headers.get raises then.
        connection = ", ".join(request.headers.get_all("Connection")).lower()
        if "upgrade" not in connection:
            return _text_response(
                426,
                "This is a molehill relay's agent endpoint. Connect with: "
                "molehill http PORT --relay ws://HOST:PORT\n",
            )
        return None


def _text_response(status: int, text: str, ctype: str = "text/plain; charset=utf-8") -> Response:
    body = text.encode()
    reason = {200: "OK", 426: "Upgrade Required"}.get(status, "")
    headers = Headers([("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return Response(status, reason, headers, body)
