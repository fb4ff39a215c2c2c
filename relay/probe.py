"""Recognises a molehill relay already listening, by what its health endpoint answers.

The dashboard, with no relay configured, looks at the default agents' address before it starts
an embedded relay of its own: two relays on one machine would split the names between them.
"The port is open" proves nothing (any program may hold 7000); a molehill relay answers
``GET /healthz`` with 200, ``ok`` and an ``X-Molehill-Relay`` header naming its protocol
version, and says where its tunnels live in ``X-Molehill-Tunnels``. Anything else (another
program, silence, a flood of bytes) is "not a molehill relay", within a short timeout and a
few KiB read.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

RELAY_HEADER = "x-molehill-relay"
TUNNELS_HEADER = "x-molehill-tunnels"
CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d{1,4})[ \t]*$")
MAX_ANSWER = 4096  # a health answer is ~150 bytes: read no more than this of anyone's


@dataclass(frozen=True, slots=True)
class FoundRelay:
    """A molehill relay that answered at ``agents_url``."""

    agents_url: str
    version: str
    tunnels: str  # its public URL for a tunnel named NAME, "" if it did not say


async def find_relay(agents_url: str, timeout: float = 1.0) -> FoundRelay | None:
    """The molehill relay at ``agents_url`` (ws://HOST:PORT), or None if what is there (if
    anything) is not one."""
    parts = urlsplit(agents_url)
    if parts.scheme != "ws" or not parts.hostname or not parts.port:
        return None  # wss:// needs its CA; a relay found by guessing is a loopback one
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            try:
                writer.write(
                    f"GET /healthz HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                answer = await _read_capped(reader)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return None
    return _recognise(agents_url, answer)


async def _read_capped(reader: asyncio.StreamReader) -> bytes:
    """The answer: until its Content-Length is in, the peer closes, or MAX_ANSWER is passed."""
    data = b""
    while len(data) <= MAX_ANSWER:
        chunk = await reader.read(MAX_ANSWER + 1 - len(data))
        if not chunk:
            break
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        found = CONTENT_LENGTH.search(head) if sep else None
        if found and len(body) >= int(found.group(1)):
            break  # a whole answer, from a server that keeps the connection open
    return data


def _recognise(agents_url: str, answer: bytes) -> FoundRelay | None:
    """Parse a health answer; None unless it is a molehill relay's, whole and well-formed."""
    if len(answer) > MAX_ANSWER:
        return None
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or status[0] != "HTTP/1.1" or status[1] != "200":
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            return None
        headers[name.strip().lower()] = value.strip()
    version = headers.get(RELAY_HEADER, "")
    if not version.isdigit() or body.strip() != b"ok":
        return None
    return FoundRelay(agents_url, version, headers.get(TUNNELS_HEADER, "")[:200])
