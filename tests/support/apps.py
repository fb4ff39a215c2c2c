"""Local apps the tests put behind a tunnel: an aiohttp app with every kind of endpoint, and a
raw TCP server that records the exact bytes it received."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

CHUNK = 64 * 1024


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic, incompressible-enough bytes (so a reordering would change the hash)."""
    block = hashlib.sha256(str(seed).encode()).digest() * (CHUNK // 32)
    whole, rest = divmod(size, len(block))
    return block * whole + block[:rest]


def pattern_sha256(size: int, seed: int = 0) -> str:
    digest = hashlib.sha256()
    block = hashlib.sha256(str(seed).encode()).digest() * (CHUNK // 32)
    left = size
    while left:
        piece = block[: min(left, len(block))]
        digest.update(piece)
        left -= len(piece)
    return digest.hexdigest()


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path_qs,
            "headers": [[k, v] for k, v in request.raw_headers_decoded()]
            if hasattr(request, "raw_headers_decoded")
            else [[k.decode(), v.decode()] for k, v in request.raw_headers],
            "sha256": hashlib.sha256(body).hexdigest(),
            "length": len(body),
            "chunked": request.headers.get("Transfer-Encoding", "") == "chunked",
        }
    )


async def upload(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    size = 0
    async for piece in request.content.iter_any():
        digest.update(piece)
        size += len(piece)
    return web.json_response({"sha256": digest.hexdigest(), "length": size})


async def download(request: web.Request) -> web.StreamResponse:
    size = int(request.query.get("size", "0"))
    chunked = request.query.get("chunked") == "1"
    resp = web.StreamResponse()
    resp.content_type = "application/octet-stream"
    if chunked:
        resp.enable_chunked_encoding()
    else:
        resp.content_length = size
    await resp.prepare(request)
    block = pattern(CHUNK)
    left = size
    while left:
        piece = block[: min(left, CHUNK)]
        await resp.write(piece)
        left -= len(piece)
    await resp.write_eof()
    return resp


async def sse(request: web.Request) -> web.StreamResponse:
    count = int(request.query.get("n", "3"))
    interval = float(request.query.get("interval", "0.2"))
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    for i in range(count):
        await resp.write(f"id: {i}\ndata: event {i}\n\n".encode())
        await asyncio.sleep(interval)
    await resp.write_eof()
    return resp


async def longpoll(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("seconds", "1")))
    return web.Response(text="done waiting")


async def status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    if code in (204, 304):
        return web.Response(status=code)
    return web.Response(status=code, text=f"status {code}")


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str("echo: " + msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def peer(request: web.Request) -> web.Response:
    """Which TCP connection carried this request (the agent's local socket, seen by the app)."""
    transport = request.transport
    address = transport.get_extra_info("peername") if transport is not None else None
    host, port = (address[0], address[1]) if address else ("", 0)
    return web.json_response({"host": host, "port": port})


async def index(request: web.Request) -> web.Response:
    return web.Response(text="hello from the local app")


SOAK_SOURCE_SIZE = 2 * 1024 * 1024


@functools.cache
def soak_source() -> bytes:
    """2 MiB of seeded random bytes: request and response bodies of the soak are slices of it."""
    return random.Random(20240607).randbytes(SOAK_SOURCE_SIZE)


async def soak(request: web.Request) -> web.Response:
    """``/soak?offset=O&size=N`` (any method): answers ``soak_source()[O:O+N]`` and reports the
    sha256 and length of the request body it received in ``X-Request-Sha256``/``-Length``."""
    digest = hashlib.sha256()
    length = 0
    async for piece in request.content.iter_any():
        digest.update(piece)
        length += len(piece)
    offset = int(request.query.get("offset", "0"))
    size = int(request.query.get("size", "0"))
    return web.Response(
        body=soak_source()[offset : offset + size],
        content_type="application/octet-stream",
        headers={"X-Request-Sha256": digest.hexdigest(), "X-Request-Length": str(length)},
    )


# A page for a real browser (tests/browser): it loads a script and a stylesheet, then exercises a
# WebSocket, server-sent events, a 3 MB upload and a 5 MB download through the tunnel, and puts
# what it saw in ``window.results`` (``window.results.error`` if something threw).
BROWSER_UPLOAD = 3 * 1024 * 1024
BROWSER_DOWNLOAD = 5 * 1024 * 1024
BROWSER_EVENTS = 5

BROWSER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>molehill browser check</title>
<link rel="stylesheet" href="/browser/app.css">
<script src="/browser/app.js" defer></script>
</head><body><h1 id="title">molehill</h1><p id="state">running</p></body></html>
"""

BROWSER_CSS = "#title { color: rgb(1, 2, 3); }\n"

BROWSER_JS = (
    """
"use strict";
async function sha256(data) {
  const digest = await crypto.subtle.digest("SHA-256", data);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
function upload_body(size) {  // browser_upload_body() in tests/support/apps.py
  const body = new Uint8Array(size);
  for (let i = 0; i < size; i++) body[i] = ((i % 251) * 7 + 3) % 256;
  return body;
}
function websocket() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${location.host}/ws`);
    ws.binaryType = "arraybuffer";
    const got = [];
    ws.onopen = () => {
      for (let i = 0; i < 3; i++) ws.send(`hello ${i}`);
      ws.send(new Uint8Array([0, 1, 2, 254, 255]));
    };
    ws.onmessage = (event) => {
      const data = event.data;
      got.push(typeof data === "string" ? data : Array.from(new Uint8Array(data)));
      if (got.length === 4) { ws.close(1000, "done"); resolve(got); }
    };
    ws.onerror = () => reject(new Error("websocket error"));
  });
}
function events(count) {
  return new Promise((resolve, reject) => {
    const source = new EventSource(`/sse?n=${count}&interval=0.05`);
    const got = [];
    source.onmessage = (event) => {
      got.push({id: event.lastEventId, data: event.data});
      if (got.length === count) { source.close(); resolve(got); }
    };
    source.onerror = () => {
      if (got.length < count) { source.close(); reject(new Error("sse error")); }
    };
  });
}
async function upload(size) {
  const body = upload_body(size);
  const resp = await fetch("/upload", {method: "POST", body});
  const answer = await resp.json();
  const sent = await sha256(body);
  return {status: resp.status, sha256: answer.sha256, length: answer.length, sent};
}
async function download(size) {
  const resp = await fetch(`/download?size=${size}`);
  const body = await resp.arrayBuffer();
  return {status: resp.status, length: body.byteLength, sha256: await sha256(body)};
}
(async () => {
  const results = {
    script: true,
    css: getComputedStyle(document.getElementById("title")).color,
    secure: window.isSecureContext,
    host: location.host,
  };
  try {
    results.websocket = await websocket();
    results.events = await events(EVENTS);
    results.upload = await upload(UPLOAD);
    results.download = await download(DOWNLOAD);
  } catch (error) {
    results.error = String(error && error.stack || error);
  }
  document.getElementById("state").textContent = "done";
  window.results = results;
})();
""".replace("EVENTS", str(BROWSER_EVENTS))
    .replace("UPLOAD", str(BROWSER_UPLOAD))
    .replace("DOWNLOAD", str(BROWSER_DOWNLOAD))
)


def browser_upload_body(size: int = BROWSER_UPLOAD) -> bytes:
    """The bytes the browser page uploads (its ``upload_body``)."""
    period = bytes((i * 7 + 3) % 256 for i in range(251))
    return (period * (size // 251 + 1))[:size]


async def browser_page(request: web.Request) -> web.Response:
    return web.Response(text=BROWSER_PAGE, content_type="text/html")


async def browser_js(request: web.Request) -> web.Response:
    return web.Response(text=BROWSER_JS, content_type="application/javascript")


async def browser_css(request: web.Request) -> web.Response:
    return web.Response(text=BROWSER_CSS, content_type="text/css")


def make_app() -> web.Application:
    app = web.Application(client_max_size=2**40)
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_post("/upload", upload)
    app.router.add_put("/upload", upload)
    app.router.add_get("/download", download)
    app.router.add_get("/sse", sse)
    app.router.add_get("/longpoll", longpoll)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/peer", peer)
    app.router.add_route("*", "/soak", soak)
    app.router.add_get("/browser/", browser_page)
    app.router.add_get("/browser/app.js", browser_js)
    app.router.add_get("/browser/app.css", browser_css)
    app.router.add_get("/", index)
    return app


@asynccontextmanager
async def local_app() -> AsyncIterator[int]:
    """Run the aiohttp test app on 127.0.0.1 (port chosen by the OS); yield its port."""
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port
    finally:
        await runner.cleanup()


@dataclass
class RawServer:
    """Records every byte received; answers each request head with a fixed small response."""

    received: bytearray = field(default_factory=bytearray)
    port: int = 0
    response: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # set when a connection ends

    def heads(self) -> list[bytes]:
        return [h + b"\r\n\r\n" for h in bytes(self.received).split(b"\r\n\r\n") if h]


@asynccontextmanager
async def raw_server() -> AsyncIterator[RawServer]:
    state = RawServer()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        try:
            while data := await reader.read(65536):
                state.received.extend(data)
                buf += data
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    writer.write(state.response)
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            state.closed.set()
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()


def decode_json(body: bytes) -> dict:
    return json.loads(body)


@asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and reads them, but never answers; yields its port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.read(65536):
                pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@asynccontextmanager
async def deaf_app(
    answer: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
) -> AsyncIterator[tuple[int, list[asyncio.StreamWriter]]]:
    """Answers each request with ``answer`` (b"": never) and keeps its connection open, even
    after the client's EOF (as a stalled app would): an END from the relay never comes back
    from the agent."""
    writers: list[asyncio.StreamWriter] = []
    over = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await over.wait()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], writers
    finally:
        over.set()
        for writer in writers:
            writer.close()
        server.close()
