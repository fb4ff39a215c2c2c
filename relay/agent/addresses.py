"""One relay name, several addresses: a link per address when a cluster's host name resolves to
several nodes (``--relay ws://relay.example:7000`` behind round-robin DNS)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from websockets.uri import parse_uri

if TYPE_CHECKING:
    from relay.agent.settings import AgentSettings

MAX_ADDRESSES = 4  # links per host name: more nodes than this are reached through these
RESOLVE_TIMEOUT = 3.0  # seconds; a name that does not resolve in time keeps one link

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system's resolver gives for ``host``, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def pick_addresses(answers: Iterable[str], cap: int = MAX_ADDRESSES) -> list[str]:
    """The addresses to link to: each once, of the first answer's family (``localhost`` as
    127.0.0.1 and ::1 is one machine, not two nodes), at most ``cap``; junk is skipped."""
    picked: list[str] = []
    family = 0
    for answer in answers:
        try:
            address = ipaddress.ip_address(answer)
        except ValueError:
            continue
        family = family or address.version
        if address.version == family and str(address) not in picked:
            picked.append(str(address))
        if len(picked) == cap:
            break
    return picked


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def expand(settings: AgentSettings) -> AgentSettings:
    """``settings`` with ``addresses`` set when a relay URL's host name resolves to several
    addresses (one link per address, per URL); unchanged otherwise, or for a TCP tunnel (one
    link), or when the name does not resolve now (the link resolves it when it dials)."""
    if settings.protocol == "tcp" or settings.addresses:
        return settings
    resolve = settings.resolver or system_resolver
    pairs: list[tuple[str, str]] = []
    several = False
    for url in dict.fromkeys([settings.relay, *settings.more_relays]):
        addresses = await _addresses(url, resolve)
        several = several or len(addresses) > 1
        pairs += [(url, address) for address in addresses] if len(addresses) > 1 else [(url, "")]
    if several:
        settings.addresses = tuple(pairs)
    return settings


async def _addresses(url: str, resolve: Resolver) -> list[str]:
    try:
        uri = parse_uri(url)
    except Exception:
        return []  # the link reports a bad URL when it dials
    if is_address(uri.host):
        return []
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            return pick_addresses(await resolve(uri.host, uri.port))
    except (OSError, TimeoutError, UnicodeError):
        return []
