"""Which user a loopback TCP connection comes from (Linux, from /proc/net/tcp and tcp6).

Loopback keeps other machines out, not other users of this one. The local API can replay a
request with the secrets only the capturing process holds (to any target it is given), so it
answers its own user only. Where the kernel does not say (other systems), None: not checked.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def kernel_hex(host: str, port: int) -> str:
    """An address as the kernel's tables write it: the IP's 32-bit words each in host order
    (little-endian here), then the port in big-endian hex: 127.0.0.1:8080 is 0100007F:1F90."""
    packed = ipaddress.ip_address(host.split("%", 1)[0]).packed
    words = b"".join(packed[i : i + 4][::-1] for i in range(0, len(packed), 4))
    return f"{words.hex().upper()}:{port:04X}"


def peer_uid(peer: tuple[str, int], server: tuple[str, int]) -> int | None:
    """The uid that owns the client end (``peer``) of a connection to ``server``; None if the
    kernel's tables are not there or do not list it. Blocking: a file read."""
    client, ours = kernel_hex(*peer[:2]), kernel_hex(*server[:2])
    for table in _TABLES:
        try:
            text = table.read_text()
        except OSError:
            continue
        for line in text.splitlines()[1:]:
            fields = line.split(maxsplit=8)
            if len(fields) > 7 and fields[1] == client and fields[2] == ours:
                return int(fields[7])
    return None
