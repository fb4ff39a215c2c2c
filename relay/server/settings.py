"""What a relay can be told: its settings, and the error for settings it refuses."""

from __future__ import annotations

from dataclasses import dataclass, field

from relay.cluster.settings import ClusterSettings
from relay.http.framing import MAX_HEAD, MAX_HEADERS
from relay.server.access import Network, TokenEntry
from relay.server.tcp_ports import PortRange
from relay.wire import codec as p


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
    head_timeout: float = 30.0  # a request head must arrive within this (slowloris); 0: never
    keepalive_timeout: float = 75.0  # close a connection idle between requests (0: never)
    max_head: int = MAX_HEAD
    max_headers: int = MAX_HEADERS
    shutdown_grace: float = 2.0
    idle_timeout: float = 300.0  # close a visitor connection idle both ways this long (0: never)
    connections_per_ip: int = 256  # open visitor connections per client address (0: no limit)
    ipv6_prefix: int = 64  # the per-address limits count an IPv6 client by this network
    rate: float = 0.0  # requests per second per tunnel, token bucket (0: no limit)
    burst: float = 0.0  # bucket size (default: rate)
    max_message: int = p.MAX_MESSAGE  # cap on an agent's websocket message
    streams_per_agent: int = 4096
    max_client_share: float = 0.5  # of streams_per_agent, per client address (0 or 1: no limit)
    tokens: tuple[TokenEntry, ...] = ()
    open: bool = False  # accept agents without a token on a non-loopback listener
    trusted_proxies: list[Network] = field(default_factory=list)
    tls_cert: str | None = None
    tls_key: str | None = None
    log_format: str = "text"
    refusal_log_rate: float = 20.0  # refusal lines per second per kind; the rest summed up (0: all)
    config_path: str | None = None  # re-read on reload() (SIGHUP)
    tcp_ports: PortRange | None = None  # public ports for TCP tunnels; None: no TCP tunnels
    tcp_idle_timeout: float = 3600.0  # close a TCP connection idle both ways this long (0: never)
    cluster: ClusterSettings | None = None  # join a cluster of relay nodes (names in Redis)


class RelayConfigError(Exception):
    """The relay refuses to start with these settings; the message says why."""


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")
