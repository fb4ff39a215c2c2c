"""The benchmark's local app: a minimal HTTP/1.1 responder (uvloop + httptools).

``python benchmarks/localapp.py PORT`` listens on 127.0.0.1:PORT (0 picks a free port) and prints
``listening on 127.0.0.1:PORT`` once it accepts connections. Routes:

- ``GET /``    -> 200 with a small text body (``SMALL_BODY`` bytes; a few hundred bytes in all)
- ``GET /64k`` -> 200 with 65,536 bytes
- anything else -> 404

Responses always carry Content-Length. Keep-alive follows the request (HTTP/1.1 default, or
``Connection: close``); pipelined requests are answered in order. ``HEAD`` gets the head only.
The app does as little Python work per request as it can, so that the direct measurement shows
the load generator's and the kernel's limits rather than the app's.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

import httptools

SMALL_BODY = b"molehill benchmark local app. " * 8 + b"ok\n"  # 243 bytes
BIG_BODY = b"0123456789abcdef" * 4096  # 65,536 bytes
NOT_FOUND_BODY = b"not found\n"


def _response(status: bytes, body: bytes, close: bool, head_only: bool = False) -> bytes:
    head = (
        b"HTTP/1.1 " + status + b"\r\n"
        b"Content-Type: text/plain\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        + (b"Connection: close\r\n" if close else b"")
        + b"\r\n"
    )
    return head if head_only else head + body


# (path, close, head_only) -> complete response bytes, built once.
ROUTES = {b"/": (b"200 OK", SMALL_BODY), b"/64k": (b"200 OK", BIG_BODY)}
RESPONSES: dict[tuple[bytes, bool, bool], bytes] = {}
for _path, (_status, _body) in ROUTES.items():
    for _close in (False, True):
        for _head in (False, True):
            RESPONSES[_path, _close, _head] = _response(_status, _body, _close, _head)


class AppProtocol(asyncio.Protocol):
    """One client connection, owning an httptools parser."""

    __slots__ = ("parser", "path", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.path = b"/"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(_response(b"400 Bad Request", b"bad request\n", True))
                self.transport.close()

    # -- httptools callbacks --------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self.path = url

    def on_message_complete(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        parser = self.parser
        close = not parser.should_keep_alive()
        head_only = parser.get_method() == b"HEAD"
        path = self.path.split(b"?", 1)[0]
        response = RESPONSES.get((path, close, head_only))
        if response is None:
            response = _response(b"404 Not Found", NOT_FOUND_BODY, close, head_only)
        transport.write(response)
        if close:
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(AppProtocol, "127.0.0.1", port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on 127.0.0.1:{bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python benchmarks/localapp.py PORT   (0 picks a free port)", file=sys.stderr)
        return 2
    import uvloop

    uvloop.run(serve(int(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
