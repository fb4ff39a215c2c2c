"""The benchmark's local app: a minimal HTTP/1.1 responder (uvloop + httptools).

``python benchmarks/localapp.py PORT`` listens on 127.0.0.1:PORT (0 picks a free port) and prints
``listening on 127.0.0.1:PORT`` once it accepts connections. Routes:

- ``GET /``    -> 200 with a small text body (``SMALL_BODY`` bytes; a few hundred bytes in all)
- ``GET /64k`` -> 200 with 65,536 bytes
- ``GET /stream?size=N`` -> 200 with N bytes (Content-Length N), written 256 KiB at a time and
  only while the socket accepts more (``pause_writing``/``resume_writing``): the app's memory does
  not grow with N
- ``POST /upload`` (any method) -> reads the body and discards it; answers ``200`` with the
  number of body bytes it received (``N\n``)
- ``GET /poll?ms=N`` -> a long-poll: 200 with a small body N milliseconds after the request
  arrived (never earlier: a timer that fires early is set again for the rest)
- ``GET /sse?n=K&ms=N`` -> server-sent events, chunked: one ``data: tick`` event every N ms
  (the first after N ms), K in all, then the end of the response
- ``GET /ws`` with ``Upgrade: websocket`` -> a WebSocket that echoes every message (wsframes.py:
  the handshake and a minimal RFC 6455 frame echo); without the upgrade, 426
- anything else -> 404

Responses carry Content-Length (except ``/sse``, which is chunked). Keep-alive follows the
request (HTTP/1.1 default, or ``Connection: close``); pipelined requests are answered in order
(except after the delayed routes: ``/stream``, ``/poll``, ``/sse`` answer later, so a client must
wait for their response before the next request). ``HEAD`` gets the head only. The app does as
little Python work per request as it can, so that the direct measurement shows the load
generator's and the kernel's limits rather than the app's.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from collections.abc import Callable

import httptools
from wsframes import Echo, handshake

SMALL_BODY = b"molehill benchmark local app. " * 8 + b"ok\n"  # 243 bytes
BIG_BODY = b"0123456789abcdef" * 4096  # 65,536 bytes
NOT_FOUND_BODY = b"not found\n"


def _response(status: bytes, body: bytes, close: bool, head_only: bool = False) -> bytes:
    head = (
        b"HTTP/1.1 " + status + b"\r\n"
        b"Content-Type: text/plain\r\n"
        b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n"
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


STREAM_CHUNK = bytes(range(256)) * 1024  # 256 KiB, written again and again by /stream
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n"
)
SSE_EVENT = b"data: tick\n\n"  # what a client counts
SSE_CHUNK = b"%x\r\n" % len(SSE_EVENT) + SSE_EVENT + b"\r\n"
POLL_BODY = b"long-poll answered\n"
WS_PATH = b"/ws"


def _query(raw: bytes) -> dict[str, str]:
    """``a=1&b=2`` -> {"a": "1", "b": "2"} (only the delayed routes pay for this)."""
    out = {}
    for part in raw.decode("latin-1").split("&"):
        key, _, value = part.partition("=")
        out[key] = value
    return out


def _int(query: dict[str, str], key: str, default: int) -> int:
    value = query.get(key, "")
    return int(value) if value.isdigit() else default


class AppProtocol(asyncio.Protocol):
    """One client connection, owning an httptools parser."""

    __slots__ = (
        "body_bytes",
        "chunk",
        "parser",
        "path",
        "stream_close",
        "stream_left",
        "transport",
        "write_paused",
        "ws",
        "ws_head",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.path = b"/"
        self.body_bytes = 0  # of the request being read (only /upload looks at it)
        self.stream_left = 0  # bytes of a /stream body still to write
        self.stream_close = False
        self.write_paused = False
        self.chunk = b""  # the bytes being parsed (on_url keeps them for a /ws handshake)
        self.ws_head: list[bytes] | None = None  # raw bytes since the /ws request line
        self.ws: Echo | None = None  # after the upgrade: the frame echo

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.ws is not None:
            self._ws_data(data)
            return
        if self.ws_head is not None:
            self.ws_head.append(data)
        self.chunk = data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgrade(data, exc.args[0])
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(_response(b"400 Bad Request", b"bad request\n", True))
                self.transport.close()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.stream_left:
            self._pump()

    # -- httptools callbacks --------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self.path = url
        if url == WS_PATH:  # keep the raw head: its Sec-WebSocket-Key (no on_header cost)
            self.ws_head = [self.chunk]

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)  # read and discarded

    def on_message_complete(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        parser = self.parser
        close = not parser.should_keep_alive()
        head_only = parser.get_method() == b"HEAD"
        path, _, query = self.path.partition(b"?")
        response = RESPONSES.get((path, close, head_only))
        if response is None:
            handler = DELAYED.get(path)
            if handler is not None:
                handler(self, _query(query), close, head_only)
                return
            response = _response(b"404 Not Found", NOT_FOUND_BODY, close, head_only)
        transport.write(response)
        if close:
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.stream_left = 0

    # -- WebSocket (GET /ws) -----------------------------------------------------------------------

    def _upgrade(self, data: bytes, offset: int) -> None:
        """httptools stopped at the end of an upgrade request's head (``data[offset:]`` is the
        new protocol's): answer a /ws handshake with 101, anything else by closing."""
        transport, head = self.transport, self.ws_head
        self.ws_head = None
        if transport is None or transport.is_closing():
            return
        joined = b"".join(head or ())
        answer = handshake(joined[: len(joined) - (len(data) - offset)]) if head else None
        if answer is None:
            if head:  # a /ws request that is not a WebSocket handshake
                transport.write(_response(b"400 Bad Request", b"bad handshake\n", True))
            transport.close()
            return
        transport.write(answer)
        self.ws = Echo()
        if offset < len(data):
            self._ws_data(data[offset:])

    def _ws_data(self, data: bytes) -> None:
        ws, transport = self.ws, self.transport
        if ws is None or transport is None:
            return
        out = ws.feed(data)
        if out:
            transport.write(out)
        if ws.closed:
            transport.close()

    def websocket(self, query: dict[str, str], close: bool, head_only: bool) -> None:
        """GET /ws: an upgrade is answered when httptools stops at its head (``_upgrade``);
        a plain GET gets 426."""
        if self.parser.should_upgrade():
            return
        self.ws_head = None
        body = b"a WebSocket echo: send Upgrade: websocket\n"
        self._finish(_response(b"426 Upgrade Required", body, close, head_only), close)

    # -- the routes that answer later or at length -----------------------------------------------

    def _finish(self, data: bytes, close: bool) -> None:
        transport = self.transport
        if transport is None:
            return
        transport.write(data)
        if close:
            transport.close()

    def upload(self, query: dict[str, str], close: bool, head_only: bool) -> None:
        received, self.body_bytes = self.body_bytes, 0
        self._finish(_response(b"200 OK", b"%d\n" % received, close, head_only), close)

    def stream(self, query: dict[str, str], close: bool, head_only: bool) -> None:
        size = _int(query, "size", 1 << 20)
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n"
            % size
            + (b"Connection: close\r\n" if close else b"")
            + b"\r\n"
        )
        if head_only or size == 0:
            self._finish(head, close)
            return
        assert self.transport is not None
        self.transport.write(head)
        self.stream_left, self.stream_close = size, close
        self._pump()

    def _pump(self) -> None:
        transport = self.transport
        chunk = len(STREAM_CHUNK)
        while transport is not None and self.stream_left > 0 and not self.write_paused:
            n = min(self.stream_left, chunk)
            transport.write(STREAM_CHUNK if n == chunk else STREAM_CHUNK[:n])
            self.stream_left -= n
        if transport is not None and self.stream_left == 0 and self.stream_close:
            transport.close()

    def poll(self, query: dict[str, str], close: bool, head_only: bool) -> None:
        delay = _int(query, "ms", 1000) / 1000
        due = time.monotonic() + delay
        response = _response(b"200 OK", POLL_BODY, close, head_only)
        _call_at(due, self._finish, response, close)

    def sse(self, query: dict[str, str], close: bool, head_only: bool) -> None:
        count, interval = _int(query, "n", 5), _int(query, "ms", 1000) / 1000
        head = SSE_HEAD + (b"Connection: close\r\n" if close else b"") + b"\r\n"
        if head_only:
            self._finish(head, close)
            return
        assert self.transport is not None
        self.transport.write(head)
        start = time.monotonic()
        _call_at(start + interval, self._tick, start, interval, 1, count, close)

    def _tick(self, start: float, interval: float, n: int, count: int, close: bool) -> None:
        transport = self.transport
        if transport is None:
            return
        if n < count:
            transport.write(SSE_CHUNK)
            _call_at(start + (n + 1) * interval, self._tick, start, interval, n + 1, count, close)
        else:
            self._finish(SSE_CHUNK + b"0\r\n\r\n", close)


def _call_at(due: float, fn: Callable[..., None], *args: object) -> None:
    """Call ``fn(*args)`` at ``due`` (time.monotonic), never earlier: the loop's timers have a
    coarse clock (uvloop: 1 ms) and may fire a little early; then they are set again."""
    loop = asyncio.get_running_loop()

    def check() -> None:
        left = due - time.monotonic()
        if left > 0:
            loop.call_later(left, check)
        else:
            fn(*args)

    loop.call_later(max(0.0, due - time.monotonic()), check)


DELAYED: dict[bytes, Callable[[AppProtocol, dict[str, str], bool, bool], None]] = {
    b"/upload": AppProtocol.upload,
    b"/stream": AppProtocol.stream,
    b"/poll": AppProtocol.poll,
    b"/sse": AppProtocol.sse,
    WS_PATH: AppProtocol.websocket,
}


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
