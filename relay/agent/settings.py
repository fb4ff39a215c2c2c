"""What one tunnel agent is told: the relay, the local app, the name and the visitors' rules."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from relay.agent.addresses import Resolver
from relay.wire import codec as p

DEFAULT_RELAY = "ws://127.0.0.1:7000"


@dataclass
class AgentSettings:
    local_port: int
    local_host: str = "127.0.0.1"
    relay: str = DEFAULT_RELAY
    more_relays: tuple[str, ...] = ()  # hold the name through these too (relay/agent/links.py)
    name: str = ""  # requested public name; "" lets the relay pick one
    token: str = ""
    window: int = p.DEFAULT_WINDOW
    connect_timeout: float = 10.0
    ping_interval: float | None = None  # None: use the relay's
    ping_timeout: float | None = None
    backoff_first: float = 0.25
    backoff_max: float = 5.0
    capture_bytes: int = 0  # keep this many body bytes per exchange for the details view
    # With captures: WebSocket messages / SSE events kept per connection (the rest are counted).
    message_cap: int = 1000
    basic_auth: str | None = None  # "user:password" the relay demands of visitors
    allow: tuple[str, ...] = ()  # visitor networks (CIDR) let in; empty: everyone
    deny: tuple[str, ...] = ()  # visitor networks turned away
    takeover: bool = False  # replace a live tunnel of the same name opened with our token
    ca_file: str | None = None  # trust this CA for wss:// (a self-signed relay)
    resume: str = ""  # a resume token from an earlier run, to get the same name back
    local_tls: bool = False  # the local app speaks HTTPS (target https://HOST:PORT)
    local_insecure: bool = False  # accept any certificate from it (self-signed, dev servers)
    give_up_after: float | None = None  # first connection: fail after this many seconds
    # Streams (local connections) open at once; a relay's OPEN beyond it is reset. A relay's
    # default limit per agent is 4096 (streams_per_agent); this one is the agent's own, at the
    # common soft limit of open files, so a relay cannot spend the process's descriptors.
    max_streams: int = 1000
    protocol: str = "http"  # "tcp": raw TCP connections on a public port, no HTTP layer
    remote_port: int | None = None  # the public port a TCP tunnel asks for; None: any
    address: str = ""  # dial this address, not the relay URL's host (TLS still checks the host)
    # (relay URL, address) per link when a relay's host name resolved to several addresses
    # (relay/agent/addresses.py); empty: one link per URL, each resolved when it dials.
    addresses: tuple[tuple[str, str], ...] = ()
    # How a relay's host name becomes addresses (host, port -> addresses); None: the system's.
    resolver: Resolver | None = None

    def options(self) -> dict[str, object]:
        """The HELLO options the relay enforces."""
        options: dict[str, object] = {}
        if self.basic_auth:
            options["basic_auth"] = self.basic_auth
        if self.allow:
            options["allow"] = list(self.allow)
        if self.deny:
            options["deny"] = list(self.deny)
        if self.takeover:
            options["takeover"] = True
        if self.protocol == "tcp":
            options["protocol"] = "tcp"
            if self.remote_port is not None:
                options["remote_port"] = self.remote_port
        return options

    @property
    def local(self) -> str:
        host = f"[{self.local_host}]" if ":" in self.local_host else self.local_host
        return f"{host}:{self.local_port}"

    @property
    def local_url(self) -> str:
        return f"{'https' if self.local_tls else 'http'}://{self.local}"

    def local_ssl(self) -> ssl.SSLContext | None:
        """The TLS settings for dialling the local app, None for plain HTTP."""
        if not self.local_tls:
            return None
        context = ssl.create_default_context()
        if self.local_insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context
