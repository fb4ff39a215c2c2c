"""`molehill demo`'s moving parts: a frontend page that calls a backend API over HTTP and a
websocket, and light traffic through the tunnels, all on a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections.abc import Callable
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from relay.transport.runtime import new_event_loop

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>molehill demo</title>
<link rel="stylesheet" href="/style.css">
<link rel="icon" href="/favicon.ico" type="image/svg+xml"></head>
<body><h1>molehill demo</h1>
<p>This page came through the <b>frontend</b> tunnel. The figures below come from the
<b>api</b> tunnel: over HTTP every two seconds, and over a websocket every second.</p>
<p>API time: <span id="time">…</span></p>
<p>Websocket ticks: <span id="ticks">0</span></p>
<script>window.API = "%(api)s";</script>
<script src="/app.js"></script></body></html>
"""
SCRIPT = """
const api = window.API;
async function poll() {
  const r = await fetch(api + "/api/time");
  document.getElementById("time").textContent = (await r.json()).time;
}
setInterval(poll, 2000); poll();
const ws = new WebSocket(api.replace("http", "ws") + "/ws");
let ticks = 0;
ws.onmessage = () => { document.getElementById("ticks").textContent = ++ticks; };
"""
STYLE = "body{font:16px system-ui;max-width:40em;margin:3em auto}h1{color:#7a4b2a}"
ITEMS = [{"id": 1, "name": "spade"}, {"id": 2, "name": "lantern"}]
# A molehill, as an SVG: browsers ask for /favicon.ico on every page, and a 404 for it in the
# request log every few seconds looked like a fault of the demo.
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<path d="M1 14 Q8 0 15 14 Z" fill="#7a4b2a"/></svg>'
)


def _response(status: int, body: bytes | str, ctype: str) -> Response:
    data = body.encode() if isinstance(body, str) else body
    headers = Headers(
        [
            ("Content-Type", ctype),
            ("Content-Length", str(len(data))),
            ("Access-Control-Allow-Origin", "*"),
            # websockets' server closes after a plain HTTP response: say so, so clients don't
            # send a second request down a closing connection.
            ("Connection", "close"),
        ]
    )
    return Response(status, HTTPStatus(status).phrase, headers, data)


def frontend_factory(api_name: str) -> Callable[[ServerConnection, Request], Response | None]:
    """HTTP handler for the demo frontend; the API URL is derived from the visitor's host."""

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        host = request.headers.get("X-Forwarded-Host") or request.headers.get("Host", "")
        api = "http://" + api_name + "." + host.split(".", 1)[-1]
        path = request.path.split("?")[0]
        if path == "/":
            return _response(200, PAGE % {"api": api}, "text/html; charset=utf-8")
        if path == "/app.js":
            return _response(200, SCRIPT, "text/javascript")
        if path == "/style.css":
            return _response(200, STYLE, "text/css")
        if path == "/favicon.ico":
            return _response(200, FAVICON, "image/svg+xml")
        return _response(404, "not found\n", "text/plain")

    return process_request


async def _backend_http(connection: ServerConnection, request: Request) -> Response | None:
    path = request.path.split("?")[0]
    if path == "/ws":
        return None  # let the websocket handshake proceed
    if path == "/api/time":
        return _response(200, json.dumps({"time": time.strftime("%H:%M:%S")}), "application/json")
    if path == "/api/items":
        return _response(200, json.dumps(ITEMS), "application/json")
    if path == "/api/slow":
        await asyncio.sleep(random.uniform(0.2, 0.6))
        return _response(200, json.dumps({"slow": True}), "application/json")
    if path == "/api/error":
        return _response(
            500, json.dumps({"error": "the demo fails on purpose"}), "application/json"
        )
    return _response(404, json.dumps({"error": "no such endpoint"}), "application/json")


async def _ticker(connection: ServerConnection) -> None:
    n = 0
    while True:
        n += 1
        await connection.send(json.dumps({"tick": n}))
        await asyncio.sleep(1)


async def _noop(connection: ServerConnection) -> None:
    await connection.wait_closed()


DEMO_TRAFFIC = (
    ("frontend", "GET", "/"),
    ("frontend", "GET", "/style.css"),
    ("frontend", "GET", "/app.js"),
    ("api", "GET", "/api/time"),
    ("api", "GET", "/api/items"),
    ("api", "GET", "/api/items"),
    ("api", "GET", "/api/slow"),
    ("api", "GET", "/api/error"),
    ("frontend", "GET", "/favicon.ico"),
)


class DemoServices:
    """The two demo apps and a traffic loop, on their own thread."""

    def __init__(self, api_name: str = "api") -> None:
        self.api_name = api_name
        self.frontend_port = 0
        self.api_port = 0
        self.relay_port = 0  # set by the caller once the relay is known, to start traffic
        self.domain = "localhost"
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="molehill-demo", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(3)

    def _main(self) -> None:
        self.loop = new_event_loop()
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        servers: list[Server] = [
            await serve(_noop, "127.0.0.1", 0, process_request=frontend_factory(self.api_name)),
            await serve(_ticker, "127.0.0.1", 0, process_request=_backend_http),
        ]
        self.frontend_port = servers[0].sockets[0].getsockname()[1]
        self.api_port = servers[1].sockets[0].getsockname()[1]
        self._ready.set()
        traffic = asyncio.create_task(self._traffic())
        await self._stop.wait()
        traffic.cancel()
        for server in servers:
            server.close()

    async def _traffic(self) -> None:
        names = {"frontend": "frontend", "api": self.api_name}
        while True:
            await asyncio.sleep(random.uniform(0.3, 1.2))
            if not self.relay_port:
                continue
            tunnel, method, path = random.choice(DEMO_TRAFFIC)
            host = f"{names[tunnel]}.{self.domain}:{self.relay_port}"
            with contextlib.suppress(OSError):
                await _request(self.relay_port, host, method, path)


async def _request(port: int, host: str, method: str, path: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: molehill-demo\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
