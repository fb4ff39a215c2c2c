"""Who may do what on a relay: agent tokens, reserved names, a tunnel's public access rules, and
per-tunnel rate limits. Pure logic, no I/O."""

from __future__ import annotations

import base64
import fnmatch
import functools
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def new_token() -> str:
    """A fresh agent token: 32 random bytes, URL-safe."""
    return "mh_" + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the relay stores: the token has 256 random bits, so a plain SHA-256 suffices."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenEntry:
    """One agent token as the relay's config keeps it (never the token itself)."""

    label: str
    hash: str
    names: tuple[str, ...] = ()  # globs of names only this token may take
    max_tunnels: int = 0  # 0: no limit
    revoked: bool = False
    ports: tuple[int, ...] = ()  # public TCP ports only this token may take
    max_tcp_ports: int = 0  # TCP ports held at once; 0: no limit

    def reserves(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, glob) for glob in self.names)


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking an agent's token: the entry, or why not."""

    entry: TokenEntry | None
    code: str = ""
    message: str = ""


def check_token(token: str, entries: Sequence[TokenEntry]) -> Verdict:
    """Find the entry for ``token``; refuse with a message that says which problem it is."""
    if not entries:
        return Verdict(None)
    if not token:
        return Verdict(
            None,
            "token_missing",
            "this relay needs an agent token: pass --token TOKEN, set [relay] token in the "
            "profiles file, or set MOLEHILL_TOKEN (ask the relay's owner for one)",
        )
    digest = token_hash(token)
    for entry in entries:
        if hmac.compare_digest(entry.hash, digest):
            if entry.revoked:
                return Verdict(
                    None,
                    "token_revoked",
                    f"the token '{entry.label}' was revoked on this relay; ask its owner for a "
                    "new one",
                )
            return Verdict(entry)
    return Verdict(
        None,
        "token_invalid",
        "this token is not valid on this relay: check it for typos, or ask the relay's owner "
        "for a new one",
    )


def reserved_by(name: str, entries: Iterable[TokenEntry]) -> TokenEntry | None:
    """The (unrevoked) token that reserves ``name``, if any."""
    for entry in entries:
        if not entry.revoked and entry.reserves(name):
            return entry
    return None


@dataclass
class AccessRules:
    """A tunnel's public access rules, checked by the relay on every request."""

    basic_auth: bytes | None = None  # the expected Authorization header value
    allow: list[Network] = field(default_factory=list)
    deny: list[Network] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.basic_auth or self.allow or self.deny)

    def ip_allowed(self, ip: str) -> bool:
        """Deny wins; a non-empty allow list lets in only its networks."""
        if not (self.allow or self.deny):
            return True
        address = client_address(ip)
        if address is None:
            return False
        if any(address in net for net in self.deny):
            return False
        return not self.allow or any(address in net for net in self.allow)

    def authorized(self, header_value: bytes) -> bool:
        expected = self.basic_auth
        if expected is None:
            return True
        # RFC 9110 11.1: the scheme is case-insensitive ("basic" is Basic); the token is not.
        parts = header_value.split(None, 1)
        if len(parts) != 2 or parts[0].lower() != b"basic":
            return False
        return hmac.compare_digest(parts[1].strip(), expected.split(None, 1)[1])


def rules_from_options(options: dict[str, Any]) -> AccessRules:
    """Validate HELLO options into rules; raises ValueError with a message for the agent."""
    rules = AccessRules()
    auth = options.get("basic_auth")
    if auth is not None:
        if not isinstance(auth, str) or ":" not in auth or auth.startswith(":"):
            raise ValueError("basic_auth must be 'user:password'")
        rules.basic_auth = b"Basic " + base64.b64encode(auth.encode())
    for key in ("allow", "deny"):
        value = options.get(key, [])
        if not isinstance(value, list) or len(value) > 256:
            raise ValueError(f"{key} must be a list of CIDR networks")
        nets = []
        for item in value:
            try:
                nets.append(ipaddress.ip_network(str(item), strict=False))
            except ValueError:
                raise ValueError(f"{key}: {item!r} is not a CIDR network") from None
        setattr(rules, key, nets)
    known = {"basic_auth", "allow", "deny", "takeover", "protocol", "remote_port", "links"}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"unknown tunnel options: {', '.join(sorted(unknown))}")
    return rules


class TokenBucket:
    """``rate`` requests a second on average, bursts of up to ``burst``."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def parse_networks(items: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(item, strict=False) for item in items]


def client_address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address to match against networks (IPv4-mapped IPv6 as IPv4); None if invalid."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def client_key(ip: str, ipv6_prefix: int = 64) -> str:
    """What the per-address limits count a client as: an IPv4 address itself, an IPv6 address by
    its network of ``ipv6_prefix`` bits (IPv4-mapped IPv6 as the IPv4 address).

    One subscriber gets a /64 (or a /56, a /48) and picks any address in it: counted one by one,
    a single client would have 2**64 addresses' worth of connections and tunnel share."""
    if ":" not in ip or ipv6_prefix >= 128:
        return ip
    return _ipv6_key(ip, ipv6_prefix)


@functools.lru_cache(maxsize=4096)  # an attacker cycling addresses only churns it
def _ipv6_key(ip: str, prefix: int) -> str:
    try:
        address = ipaddress.IPv6Address(ip)
    except ValueError:
        return ip  # not an address (a scope id, a proxy's junk): counted as it is written
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    bits = 128 - prefix
    return str(ipaddress.IPv6Network((int(address) >> bits << bits, prefix)))


def in_networks(ip: str, networks: Sequence[Network]) -> bool:
    address = client_address(ip)
    return address is not None and any(address in net for net in networks)
