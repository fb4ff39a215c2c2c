"""The relay's TCP tunnels: one listening port per tunnel, each connection one stream, no HTTP.

A tunnel's port listens from its WELCOME until its name's lease ends: while its agent is away
(reconnecting), connections to the port are closed at once, and the port is still its own when
the agent comes back with its resume token. Each accepted connection is checked like an HTTP
request is (the tunnel's allow/deny rules, its rate limit, connections per address, the share of
streams one client may hold) before the agent hears of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import TYPE_CHECKING

from relay.server import policy
from relay.server.access import TokenEntry, client_key
from relay.server.tcp_ports import PortAllocator, PortRefusal
from relay.transport.bridge import StreamBridge

if TYPE_CHECKING:
    from relay.server import Relay
    from relay.server.agent_session import AgentSession


class _Listener:
    """One tunnel's listening socket; asyncio takes it over once its server has started."""

    def __init__(self, tunnels: TcpTunnels, name: str, sock: socket.socket) -> None:
        self.port = int(sock.getsockname()[1])
        self.sock = sock
        self.server: asyncio.Server | None = None
        loop = asyncio.get_running_loop()
        # The socket already listens: connections wait in its backlog until the server runs.
        self.task = loop.create_task(
            loop.create_server(lambda: TcpVisitor(tunnels, name), sock=sock, backlog=1024)
        )
        self.task.add_done_callback(self._started)

    def _started(self, task: asyncio.Task[asyncio.Server]) -> None:
        if not task.cancelled() and task.exception() is None:
            self.server = task.result()

    def close(self) -> None:
        task = self.task
        if self.server is None and task.done() and not task.cancelled():
            self._started(task)  # started, but its callback has not run yet
        if self.server is not None:
            self.server.close()  # stops watching the socket, then closes it
        else:
            task.cancel()
            with contextlib.suppress(OSError):
                self.sock.close()


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class TcpTunnels:
    """Ports, listeners and open connections of a relay's TCP tunnels."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.allocator = PortAllocator(relay.settings.tcp_ports)
        self.listeners: dict[str, _Listener] = {}  # by tunnel name
        self.connections: set[TcpVisitor] = set()
        # For /metrics: connections let through, turned away (by rule), bytes of closed ones.
        self.accepted = 0
        self.refused: dict[str, int] = {}
        self.bytes_in = 0
        self.bytes_out = 0

    def url(self, name: str) -> str:
        return f"tcp://{self.relay.settings.domain}:{self.allocator.port_of(name)}"

    def open(self, name: str, requested: int | None, entry: TokenEntry | None) -> int | PortRefusal:
        """Give tunnel ``name`` a listening port (its own again, on a resume), or say why not."""
        s = self.relay.settings
        label = entry.label if entry else ""
        limit = entry.max_tcp_ports if entry else 0
        choice = self.allocator.choose(name, requested, label, s.tokens, limit)
        if isinstance(choice, PortRefusal):
            return choice
        current = self.listeners.get(name)
        if current is not None and current.port in choice:
            self.allocator.assign(name, current.port, label)
            return current.port
        why = ""
        for port in choice:
            try:
                sock = _bind(s.http_host, port)
            except OSError as exc:  # another program has it: that one is not ours to give
                why = exc.strerror or str(exc)
                continue
            self.release(name)
            self.allocator.assign(name, port, label)
            self.listeners[name] = _Listener(self, name, sock)
            return port
        if requested is not None:
            return PortRefusal(
                "port_unavailable",
                f"port {requested} cannot be opened on the relay ({why}); choose another "
                "--remote-port",
            )
        return PortRefusal("no_free_port", f"no free port in the relay's TCP range ({why})")

    def release(self, name: str) -> None:
        """The name is gone for good (lease over, or it became an HTTP tunnel): close its port."""
        listener = self.listeners.pop(name, None)
        if listener is not None:
            listener.close()
        self.allocator.release(name)

    def sweep(self) -> None:
        """Reset connections idle both ways for tcp_idle_timeout (a database may idle long)."""
        timeout = self.relay.settings.tcp_idle_timeout
        if timeout and self.connections:
            deadline = time.monotonic() - timeout
            for conn in [c for c in self.connections if c.last_active < deadline]:
                conn.reset("idle_timeout", "no traffic either way for the TCP idle timeout")

    def close(self) -> None:
        """The relay stops: no more listening, every connection cut."""
        for name in list(self.listeners):
            self.listeners.pop(name).close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()


class TcpVisitor(StreamBridge):
    """One connection to a tunnel's public port, bridged to one stream of its agent."""

    def __init__(self, tunnels: TcpTunnels, name: str) -> None:
        super().__init__(None, None)
        self.tunnels = tunnels
        self.relay = tunnels.relay
        self.name = name
        self.session: AgentSession | None = None
        self.client_ip = ""
        self.client_port = 0
        self.owner = ""  # the address this connection's stream is counted against
        self.counted = False  # in relay.per_ip
        self.address_key = ""  # what relay.per_ip counts it as (client_key)
        self.last_active = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername") or ("", 0)
        self.client_ip, self.client_port = str(peer[0]), int(peer[1])
        rule = self._admit()
        if rule is not None:
            self.tunnels.refused[rule] = self.tunnels.refused.get(rule, 0) + 1
            self.relay.log_event("tcp_refused", tunnel=self.name, client=self.client_ip, rule=rule)
            self.transport.abort()  # type: ignore[union-attr]

    def _admit(self) -> str | None:
        """Check the connection against the tunnel's rules; the rule that says no, or None."""
        relay = self.relay
        s = relay.settings
        session = relay.tunnels.get(self.name)
        if session is None or session.protocol != "tcp":
            return "tunnel_offline"
        ip = self.client_ip
        key = self.address_key = client_key(ip, s.ipv6_prefix)
        count = relay.count_address(key)
        self.counted = True
        if s.connections_per_ip and count > s.connections_per_ip:
            return "per_ip"
        if not session.rules.ip_allowed(ip):
            return "allow_deny"
        if session.bucket is not None and not session.bucket.take():
            return "rate"
        cap = policy.client_cap(s)
        if cap and session.client_streams.get(key, 0) >= cap:
            return "max_client_share"
        if not session.attach(self):
            return "streams_per_agent"
        self.session = session
        self.owner = key
        policy.count(session.client_streams, key, 1)
        self.tunnels.connections.add(self)
        self.tunnels.accepted += 1
        return None

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        if self.session is not None:
            self.forward(data)

    def eof_received(self) -> bool:
        if self.session is None or self.finished:
            return False
        return super().eof_received()

    def on_data(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        super().on_data(data)

    def forget(self) -> None:
        session = self.session
        if session is not None:
            session.detach(self.sid)
            if self.owner:
                policy.count(session.client_streams, self.owner, -1)
                self.owner = ""

    def connection_lost(self, exc: Exception | None) -> None:
        relay = self.relay
        self.tunnels.connections.discard(self)
        relay.bytes_in += self.bytes_from_socket
        relay.bytes_out += self.bytes_to_socket
        self.tunnels.bytes_in += self.bytes_from_socket
        self.tunnels.bytes_out += self.bytes_to_socket
        if self.counted:
            self.counted = False
            relay.uncount_address(self.address_key)
        if self.session is not None:
            super().connection_lost(exc)  # a stream still open is reset: the agent lets go
        self.finished = True
