"""Open a client connection to a ws:// or wss:// endpoint: the one place that dials a relay."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable


async def dial(
    factory: Callable[[], asyncio.Protocol],
    host: str,
    port: int,
    context: ssl.SSLContext | None,
    address: str = "",
) -> None:
    """Connect ``factory()``'s protocol to ``host``:``port`` (TLS with ``context``, if any).

    ``address``: connect to this address instead of resolving ``host``; TLS still checks the
    certificate against ``host`` (one link per address of a name that resolves to several).
    The caller bounds the wait (its own timeout covers the handshake that follows).
    """
    await asyncio.get_running_loop().create_connection(
        factory,
        address or host,
        port,
        ssl=context,
        server_hostname=host if context else None,
    )
