"""What the relay decides about one visitor request, as pure functions: who the client is, what
the tunnel's rules say, how many streams one client may hold, and which page says no."""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from typing import TypeVar

from relay.http import pages
from relay.http.framing import RequestHead, header_list, header_value
from relay.http.names import tunnel_from_host
from relay.server.access import AccessRules, TokenBucket, client_key
from relay.server.settings import RelaySettings, is_loopback

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the relay answers itself: the page, and the rule that said no (for the log)."""

    page: pages.ErrorPage
    rule: str


def tunnel_for(
    host: str, domain: str, tunnels: Mapping[str, T], leases: Container[str]
) -> T | Refusal:
    """The live tunnel ``host`` names, or the page that says why there is none."""
    name = tunnel_from_host(host, domain)
    if name is None:
        return Refusal(pages.no_tunnel_in_host(host, domain), "no_tunnel_in_host")
    tunnel = tunnels.get(name)
    if tunnel is not None:
        return tunnel
    if name in leases:
        return Refusal(pages.tunnel_offline(name), "tunnel_offline")
    return Refusal(pages.unknown_tunnel(name, domain), "unknown_tunnel")


def client_and_chain(
    head: RequestHead, peer: str, trusted: Callable[[str], bool]
) -> tuple[str, str]:
    """For a request from a trusted proxy at ``peer``: the client, and the X-Forwarded-For to
    carry on.

    Every X-Forwarded-For line counts (a proxy may add its own line rather than extend the
    first). Each proxy appends the address it saw, so the client is the right-most address
    that is not a trusted proxy: anything left of it was written by the client itself.
    """
    hops = header_list(head, b"x-forwarded-for")
    client = next((hop for hop in reversed(hops) if not trusted(hop)), hops[0] if hops else peer)
    return client, ", ".join([*hops, peer])


def check_request(
    rules: AccessRules, bucket: TokenBucket | None, tunnel: str, client: str, head: RequestHead
) -> Refusal | None:
    """The tunnel's rules for one request: address, basic auth, then rate (a refused request
    does not use up the rate)."""
    if not rules.ip_allowed(client):
        return Refusal(pages.forbidden(tunnel, client), "allow_deny")
    if rules.basic_auth is not None and not rules.authorized(
        header_value(head, b"authorization").encode("latin-1")
    ):
        return Refusal(pages.unauthorized(tunnel), "basic_auth")
    if bucket is not None and not bucket.take():
        return Refusal(pages.too_many_requests(tunnel), "rate")
    return None


def client_cap(settings: RelaySettings) -> int:
    """How many of one tunnel's streams one client address may hold (0: no limit)."""
    share = settings.max_client_share
    if share <= 0 or share >= 1:
        return 0
    return max(1, int(settings.streams_per_agent * share))


def share_refusal(
    counts: Mapping[str, int], settings: RelaySettings, tunnel: str, client: str
) -> Refusal | None:
    """Refuse one more stream of ``tunnel`` to ``client`` if it holds its share already, so
    that idle connections from a few addresses cannot make a tunnel busy for everyone."""
    cap = client_cap(settings)
    if cap and counts.get(client_key(client, settings.ipv6_prefix), 0) >= cap:
        return Refusal(pages.client_share(tunnel, client), "max_client_share")
    return None


def count(counts: dict[str, int], client: str, delta: int) -> None:
    """Streams per client address: add ``delta`` (a client at 0 is dropped)."""
    left = counts.get(client, 0) + delta
    if left > 0:
        counts[client] = left
    else:
        counts.pop(client, None)


def app_down_page(tunnel: str, detail: str, settings: RelaySettings) -> pages.ErrorPage:
    """The 502 page: the agent's words (the app's local address, the error) only on a relay
    that serves loopback alone, i.e. the visitor is on the agent owner's own machine. A relay
    behind a proxy (trusted_proxies) listens on loopback but serves the world."""
    private = is_loopback(settings.http_host) and not settings.trusted_proxies
    return pages.local_app_down(tunnel, detail if private else None)
