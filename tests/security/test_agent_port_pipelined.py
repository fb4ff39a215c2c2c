"""A HELLO sent in the same packet as a request the agents' port answers with HTTP (a health
check, a scrape, anything that is no websocket upgrade) must not open a session: websockets
parses the frames behind the request before the relay has answered it, and the relay used to
hand them to the session all the same. The name was admitted on a connection that got a 200,
and held afterwards as if its agent had been lost. A real relay, raw sockets."""

from __future__ import annotations

import asyncio
import base64
import os

from relay.transport.link import binary_frame_header
from relay.wire import codec as p
from tests.support.stack import running_relay


def _masked_hello(name: str) -> bytes:
    hello = p.encode_message(p.Hello(p.VERSION, name, "", "", p.DEFAULT_WINDOW, {}))
    # A zero mask leaves the payload as it is (RFC 6455 5.3: the key is XORed in).
    return binary_frame_header(len(hello), b"\0\0\0\0") + hello


async def test_a_hello_behind_a_request_answered_with_http_opens_nothing():
    async with running_relay() as relay:
        for path, status in (("/healthz", b"200"), ("/metrics", b"200"), ("/x", b"426")):
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.agents_port)
            request = f"GET {path} HTTP/1.1\r\nHost: relay\r\n\r\n".encode()
            writer.write(request + _masked_hello("sneaky"))
            answer = await asyncio.wait_for(reader.read(), 5)  # the answer, then the close
            assert answer.startswith(b"HTTP/1.1 " + status), answer[:80]
            writer.close()
            await asyncio.sleep(0.1)
            assert "sneaky" not in relay.tunnels and "sneaky" not in relay.leases, path

        # A real upgrade with its HELLO in the same packet is still served.
        key = base64.b64encode(os.urandom(16)).decode()
        upgrade = (
            "GET / HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.agents_port)
        writer.write(upgrade.encode() + _masked_hello("honest"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        async with asyncio.timeout(5):
            while "honest" not in relay.tunnels:
                await asyncio.sleep(0.02)
        writer.close()
