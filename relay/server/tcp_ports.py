"""Which public TCP port a tunnel gets: the relay's range, reserved ports, per-token limits.

Pure logic, no sockets: the listener (tcp_listener.py) binds what this allocator chooses. A port
belongs to a tunnel name from its WELCOME until the name's lease ends, so an agent that
reconnects with its resume token finds its port where it left it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from relay.server.access import TokenEntry

RANDOM_TRIES = 64  # random picks before a linear scan of the range


@dataclass(frozen=True, slots=True)
class PortRange:
    """Public TCP ports a relay may hand out, both ends included."""

    first: int
    last: int

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


@dataclass(frozen=True, slots=True)
class PortRefusal:
    """Why a tunnel gets no port: a code for machines and a message that says what to do."""

    code: str
    message: str


def parse_port_range(text: str) -> PortRange:
    """``"20000-20999"`` (or one port, ``"20000"``); raises ValueError with a clear message."""
    first, sep, last = text.strip().partition("-")
    if not sep:
        last = first
    first, last = first.strip(), last.strip()
    if not (first.isascii() and last.isascii() and first.isdigit() and last.isdigit()):
        raise ValueError(f"{text!r} is not a port range like 20000-20999")
    low, high = int(first), int(last)
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"{text!r}: ports go from 1 to 65535, the first no higher than the last")
    return PortRange(low, high)


def requested_port(value: object) -> int | PortRefusal | None:
    """HELLO's ``remote_port`` option checked: None (any port), a port, or a refusal."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        shown = repr(value)[:40]
        return PortRefusal(
            "bad_port", f"remote_port must be a port number from 1 to 65535, not {shown}"
        )
    return value


class PortAllocator:
    """The ports tunnels hold (online or leased), by tunnel name."""

    def __init__(self, ports: PortRange | None) -> None:
        self.ports = ports
        self.by_name: dict[str, int] = {}
        self.owner: dict[int, str] = {}  # port -> tunnel name
        self.label: dict[int, str] = {}  # port -> the token label it was given to

    def port_of(self, name: str) -> int | None:
        return self.by_name.get(name)

    def choose(
        self,
        name: str,
        requested: int | None,
        label: str,
        tokens: Iterable[TokenEntry] = (),
        limit: int = 0,
    ) -> list[int] | PortRefusal:
        """The ports to try binding for tunnel ``name``, best first, or why there is none.

        ``label`` is the agent token's label ("" on a relay without tokens); ``limit`` is that
        token's max_tcp_ports (0: no limit). Nothing changes until :meth:`assign`.
        """
        ports = self.ports
        if ports is None:
            return PortRefusal(
                "tcp_disabled",
                "this relay does not serve TCP tunnels; its operator can turn them on with "
                "`molehill relay --tcp-ports 20000-20999` (or tcp_ports in its config file)",
            )
        tokens = tuple(tokens)
        held = self.by_name.get(name)
        if limit:
            mine = sum(1 for p, who in self.label.items() if who == label and p != held)
            if mine >= limit:
                return PortRefusal(
                    "too_many_ports",
                    f"the token '{label}' may hold {limit} TCP port(s) at once; stop a TCP "
                    "tunnel first",
                )
        if requested is None:
            if held is not None:
                return [held]
            return self._free(name, label, tokens)
        if requested not in ports:
            return PortRefusal(
                "port_out_of_range",
                f"port {requested} is outside this relay's TCP port range {ports}; ask for a "
                "port in it, or leave --remote-port out to get any free one",
            )
        reserver = _reserved_by(requested, tokens)
        if reserver is not None and reserver.label != label:
            return PortRefusal(
                "port_reserved",
                f"port {requested} is reserved on this relay for another token; choose another "
                "--remote-port",
            )
        owner = self.owner.get(requested)
        if owner is not None and owner != name:
            return PortRefusal(
                "port_taken",
                f"port {requested} is in use by another tunnel (or held for its agent to come "
                "back); choose another --remote-port",
            )
        return [requested]

    def _free(
        self, name: str, label: str, tokens: tuple[TokenEntry, ...]
    ) -> list[int] | PortRefusal:
        ports = self.ports
        assert ports is not None
        reserved = {p for t in tokens if not t.revoked for p in t.ports}
        taken = self.owner.keys() | reserved

        def free(port: int) -> bool:
            return port not in taken

        picks: list[int] = []
        for _ in range(RANDOM_TRIES):  # random: a port number tells no one how busy the relay is
            port = random.randint(ports.first, ports.last)
            if free(port) and port not in picks:
                picks.append(port)
            if len(picks) >= 8:
                return picks
        start = random.randint(ports.first, ports.last)
        for offset in range(len(ports)):
            port = ports.first + (start - ports.first + offset) % len(ports)
            if free(port) and port not in picks:
                picks.append(port)
                if len(picks) >= 8:
                    break
        if not picks:
            return PortRefusal(
                "no_free_port",
                f"every port of this relay's TCP range {ports} is taken; try again later",
            )
        return picks

    def assign(self, name: str, port: int, label: str) -> None:
        """Give ``port`` to tunnel ``name`` (its old port, if another, is released)."""
        old = self.by_name.get(name)
        if old is not None and old != port:
            self.release(name)
        self.by_name[name] = port
        self.owner[port] = name
        self.label[port] = label

    def release(self, name: str) -> int | None:
        """The tunnel's name is gone for good: free its port (returned), if it had one."""
        port = self.by_name.pop(name, None)
        if port is not None:
            self.owner.pop(port, None)
            self.label.pop(port, None)
        return port


def _reserved_by(port: int, tokens: Iterable[TokenEntry]) -> TokenEntry | None:
    for entry in tokens:
        if not entry.revoked and port in entry.ports:
            return entry
    return None
