"""The relay server: the public HTTP listener, the agents' websocket listener, names and leases."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from relay import protocol as p
from relay.http1 import MAX_HEAD, MAX_HEADERS
from relay.names import label_problem, random_name
from relay.public import PublicConnection
from relay.session import AgentSession

log = logging.getLogger("molehill.relay")


@dataclass
class RelaySettings:
    """Everything a relay can be told; the command line and tests fill it in."""

    domain: str = "localhost"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    agents_host: str = "127.0.0.1"
    agents_port: int = 7000
    public_port: int | None = None  # the port in public URLs; default: the listening port
    public_scheme: str = "http"
    window: int = p.DEFAULT_WINDOW
    lease: float = 120.0  # seconds a disconnected agent's name stays reserved for it
    ping_interval: float = 5.0
    ping_timeout: float = 15.0
    hello_timeout: float = 10.0
    head_timeout: float = 30.0  # first request head must arrive within this (slowloris)
    max_head: int = MAX_HEAD
    max_headers: int = MAX_HEADERS
    shutdown_grace: float = 2.0


@dataclass
class Lease:
    """A disconnected agent's name, held for ``resume`` until ``expires`` (monotonic)."""

    resume: str
    expires: float
    timer: asyncio.TimerHandle


class Relay:
    """Run with ``async with Relay(settings) as relay:``; ports may be 0 (chosen by the OS)."""

    def __init__(self, settings: RelaySettings | None = None) -> None:
        self.settings = settings or RelaySettings()
        self.tunnels: dict[str, AgentSession] = {}
        self.leases: dict[str, Lease] = {}
        self.sessions: set[AgentSession] = set()
        self.public_connections: set[PublicConnection] = set()
        self.requests = 0
        self.errors = 0
        self.responses_by_class: dict[str, int] = {}
        self._servers: list[asyncio.Server] = []
        self.http_port = 0
        self.agents_port = 0

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings
        public = await loop.create_server(
            lambda: PublicConnection(self), s.http_host, s.http_port, backlog=1024
        )
        agents = await loop.create_server(
            lambda: AgentSession(self), s.agents_host, s.agents_port, backlog=1024
        )
        self._servers = [public, agents]
        self.http_port = public.sockets[0].getsockname()[1]
        self.agents_port = agents.sockets[0].getsockname()[1]

    @property
    def agents_url(self) -> str:
        return f"ws://{self.settings.agents_host}:{self.agents_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.http_host}:{self.http_port}"

    async def stop(self) -> None:
        """Stop listening, tell agents, let open streams finish briefly, then reset the rest."""
        for server in self._servers:
            server.close()
        for session in list(self.sessions):
            if session.name is not None:
                session.send(p.GoAway("relay shutting down"))
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
        for session in list(self.sessions):
            session.close("relay shutting down", code=1001)
        for lease in self.leases.values():
            lease.timer.cancel()
        self.leases.clear()
        if self.sessions:
            await asyncio.wait([s.closed for s in self.sessions], timeout=2.0)
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
        """Answer an agent's HELLO: give it its name, or say why not."""
        if hello.version != p.VERSION:
            session.refuse(
                "version",
                f"this relay speaks protocol {p.VERSION}, the agent {hello.version}: "
                "upgrade the older side",
            )
            return
        if not 1024 <= hello.window <= p.MAX_WINDOW:
            session.refuse("bad_window", f"window {hello.window} out of range")
            return
        name = hello.name or self._free_random_name()
        problem = label_problem(name)
        if problem:
            session.refuse("invalid_name", problem)
            return
        live = self.tunnels.get(name)
        lease = self.leases.get(name)
        if live is not None:
            if not hello.resume or hello.resume != live.resume:
                session.refuse(
                    "name_taken",
                    f"the name '{name}' is in use by another agent; choose another --subdomain",
                )
                return
            # The same agent is back before its old connection was declared dead.
            self.tunnels.pop(name, None)
            live.fail("replaced by a reconnecting agent with the same resume token")
        elif lease is not None:
            if hello.resume != lease.resume:
                wait = max(0, int(lease.expires - time.monotonic()))
                session.refuse(
                    "name_held",
                    f"the name '{name}' is held for its previous agent for {wait} more "
                    "seconds; choose another --subdomain",
                )
                return
            lease.timer.cancel()
            del self.leases[name]
        # A free name keeps the agent's own token: after a relay restart it still names it.
        resume = hello.resume or secrets.token_urlsafe(24)
        self.tunnels[name] = session
        session.welcome(name, resume, hello)
        log.info("tunnel online: %s from %s", name, session.peer)

    def _free_random_name(self) -> str:
        for attempt in range(50):
            name = random_name(suffix_digits=0 if attempt < 20 else 3)
            if name not in self.tunnels and name not in self.leases:
                return name
        return f"tunnel-{secrets.token_hex(4)}"

    def session_closed(self, session: AgentSession, reason: str) -> None:
        self.sessions.discard(session)
        name = session.name
        if name is None or self.tunnels.get(name) is not session:
            return
        del self.tunnels[name]
        lease_s = self.settings.lease
        timer = asyncio.get_running_loop().call_later(lease_s, self._expire, name, session.resume)
        self.leases[name] = Lease(session.resume, time.monotonic() + lease_s, timer)
        log.info("tunnel offline: %s (%s); name held for %ss", name, reason, lease_s)

    def _expire(self, name: str, resume: str) -> None:
        lease = self.leases.get(name)
        if lease is not None and lease.resume == resume:
            del self.leases[name]
            log.info("lease expired: %s", name)

    # -- plain HTTP on the agents' port ------------------------------------------------------------

    def http_on_agent_port(self, request: Request) -> Response | None:
        """Answer non-websocket requests on the agents' listener (health checks)."""
        if request.path == "/healthz":
            return _text_response(200, "ok\n")
        if "upgrade" not in request.headers.get("Connection", "").lower():
            return _text_response(
                426,
                "This is a molehill relay's agent endpoint. Connect with: "
                "molehill http PORT --relay ws://HOST:PORT\n",
            )
        return None


def _text_response(status: int, text: str) -> Response:
    body = text.encode()
    reason = {200: "OK", 426: "Upgrade Required"}.get(status, "")
    headers = Headers(
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    )
    return Response(status, reason, headers, body)
