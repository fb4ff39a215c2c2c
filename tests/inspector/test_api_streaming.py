"""The local API's HAR and listing, streamed a page at a time, on real sockets against real
stores: the same document as har_log, bounded memory in the serving process with a big store and
with a client that stops reading, the connection cap and write timeout for streamed answers, a
store that fails midway (the answer is cut, never ended), filters and tunnels, an empty store."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import time
import tracemalloc
from pathlib import Path
from urllib.parse import urlencode

import pytest

from inspector import CaptureStore, api_server, pages
from inspector.api import InspectorApi, TunnelInfo, request_json
from inspector.api_server import start_server
from inspector.errors import StoreError
from inspector.export import har_log
from inspector.filters import parse
from inspector.message_rows import MessageUpdate
from inspector.model import StoredBody, StoredExchange, prepare
from inspector.redact import Redactor
from inspector.settings import CaptureSettings
from relay.events import StreamMessage
from tests.inspector.records import corpus

MIB = 1024 * 1024
BIG_COUNT, BIG_BODY = 2000, 100 * 1024
DOC_END = b"]}}\n"


def _big_exchange(i: int, body: bytes) -> StoredExchange:
    kind = b"text/plain" if i % 2 else b"application/octet-stream"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (kind, len(body))
    return StoredExchange(
        id=0, tunnel="web", time=1.7e9 + i, method="GET", path=f"/files/{i}?v={i % 7}",
        status=200, duration_ms=12.5, ttfb_ms=3.0, bytes_in=60, bytes_out=len(body) + 90,
        client="203.0.113.7", http_version="1.1",
        request_head=f"GET /files/{i}?v={i % 7} HTTP/1.1\r\nHost: app.example\r\n\r\n".encode(),
        response_head=head, request_body=StoredBody(),
        response_body=StoredBody(body, False, len(body), None),
    )  # fmt: skip


@pytest.fixture(scope="module")
def big_store(tmp_path_factory) -> Path:
    """2,000 exchanges of 100 KiB (half text, half binary: base64 in the HAR): a 230 MiB HAR."""
    path = tmp_path_factory.mktemp("big") / "c.sqlite3"
    text = (b"all work and no play makes a dull tunnel " * 2600)[:BIG_BODY]
    with CaptureStore(path, max_bytes=1024 * MIB) as store:
        for start in range(0, BIG_COUNT, 200):
            store.add(
                [
                    _big_exchange(i, text if i % 2 else os.urandom(BIG_BODY))
                    for i in range(start, start + 200)
                ]
            )
    return path


@pytest.fixture
async def serve(tmp_path):
    """serve(store path) -> the API's port, on loopback, in this process."""
    servers, apis = [], []

    async def start(path: Path) -> int:
        tunnels = [TunnelInfo("web", "http://web.localhost:8080", "http://127.0.0.1:3000")]
        api = InspectorApi(CaptureSettings(path=path, max_bytes=1024 * MIB), lambda: tunnels)
        server = await start_server(api.handle, "127.0.0.1", 0)
        servers.append(server)
        apis.append(api)
        port = int(server.sockets[0].getsockname()[1])
        await fetch(port, "/api/requests/http?limit=1")  # the store opened, before any figure
        return port

    yield start
    for server in servers:
        server.close()
    for api in apis:
        api.close()


async def send(port: int, target: str, version: str = "1.1"):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/{version}\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    return head, reader, writer


async def read_chunked(reader: asyncio.StreamReader, out) -> bool:
    """Copy a chunked body to ``out`` (a MiB at a time); whether its last chunk came."""
    try:
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            while size:
                data = await reader.read(min(size, MIB))
                if not data:
                    return False
                out.write(data)
                size -= len(data)
            assert await reader.readexactly(2) == b"\r\n"
        return await reader.readexactly(2) == b"\r\n"
    except (asyncio.IncompleteReadError, ConnectionError):
        return False


async def fetch(port: int, target: str, version: str = "1.1") -> tuple[bytes, bytes, bool]:
    """(head, body, complete) of one answer."""
    head, reader, writer = await send(port, target, version)
    body = io.BytesIO()
    try:
        if b"Transfer-Encoding: chunked" in head:
            complete = await read_chunked(reader, body)
        else:
            body.write(await reader.read())
            complete = True
    finally:
        writer.close()
    return head, body.getvalue(), complete


class Hashing:
    """A sink that keeps a file of what it is given and its hash, nothing in memory."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("wb")
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.sha.update(data)
        self.size += len(data)


async def ticking(stalls: list[float], stop: asyncio.Event) -> None:
    """The longest the loop went without running this (what a tunnel on it would wait)."""
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.005)
        now = time.perf_counter()
        stalls.append(now - last - 0.005)
        last = now


async def test_a_big_har_streams_in_bounded_memory_and_equals_har_log(big_store, serve, tmp_path):
    port = await serve(big_store)
    sink = Hashing(tmp_path / "got.har")
    stalls: list[float] = []
    stop = asyncio.Event()
    tick = asyncio.create_task(ticking(stalls, stop))
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        head, reader, writer = await send(port, "/api/requests/http.har")
        complete = await read_chunked(reader, sink)
        writer.close()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
        stop.set()
        await tick
    sink.file.close()
    assert head.startswith(b"HTTP/1.1 200") and b"Transfer-Encoding: chunked" in head
    assert complete and sink.size > 200 * MIB
    # The whole answer was held at once before (about 4.8 times its size); now a page or two.
    assert peak < sink.size / 16, (peak, sink.size)
    assert max(stalls) < 1.0  # the answer was built on the loop before: 5 s for this one
    with CaptureStore(big_store, create=False) as store:
        expected = har_log(store.select(full=True, newest_first=False))
    assert sink.sha.digest() == hashlib.sha256(json.dumps(expected).encode() + b"\n").digest()
    got = json.loads((tmp_path / "got.har").read_bytes())
    assert len(got["log"]["entries"]) == BIG_COUNT and got == expected


async def test_a_client_that_stops_reading_holds_little_and_is_cut(big_store, serve, monkeypatch):
    port = await serve(big_store)
    monkeypatch.setattr(api_server, "WRITE_TIMEOUT", 1.0)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        head, reader, writer = await send(port, "/api/requests/http.har")
        assert b"chunked" in head and await reader.read(10)  # a few bytes, then nothing
        started = time.monotonic()
        while time.monotonic() - started < 2.5:  # past the write timeout
            async with asyncio.timeout(2):  # others are answered meanwhile
                other, listing, _ = await fetch(port, "/api/requests/http?limit=3")
                tunnels = await fetch(port, "/api/tunnels")
            assert other.startswith(b"HTTP/1.1 200") and len(json.loads(listing)["requests"]) == 3
            assert tunnels[0].startswith(b"HTTP/1.1 200") and b"public_url" in tunnels[1]
            await asyncio.sleep(0.2)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < 16 * MIB, peak  # a page or two, of a 230 MiB answer
    rest = bytearray()
    with pytest.raises(ConnectionError):  # cut: what the kernel held, then a reset
        async with asyncio.timeout(10):
            while data := await reader.read(MIB):
                rest += data
            raise ConnectionResetError("closed")  # an end without a reset is a cut too
    writer.close()
    assert len(rest) < 100 * MIB and not rest.endswith(b"0\r\n\r\n")


async def test_streamed_answers_hold_their_connection_until_the_write_timeout(
    big_store, serve, monkeypatch
):
    port = await serve(big_store)
    monkeypatch.setattr(api_server, "WRITE_TIMEOUT", 1.0)
    monkeypatch.setattr(api_server, "MAX_CONNECTIONS", 3)
    held = [await send(port, "/api/requests/http.har") for _ in range(3)]
    assert (await fetch(port, "/api/tunnels"))[0].startswith(b"HTTP/1.1 503")
    for code in range(100):  # the three that read nothing are let go, and the API recovers
        await asyncio.sleep(0.1)
        if (code := await fetch(port, "/api/tunnels"))[0].startswith(b"HTTP/1.1 200"):
            break
    assert code[0].startswith(b"HTTP/1.1 200")
    for _, _, writer in held:
        writer.close()


async def test_a_store_that_fails_midway_cuts_the_answer(big_store, serve, monkeypatch):
    port = await serve(big_store)
    real = pages.PagedDocument.next_piece
    calls = []

    def failing(self, store):
        calls.append(1)
        if len(calls) == 3:
            raise StoreError(Path("c.sqlite3"), "disk I/O error")
        return real(self, store)

    monkeypatch.setattr(pages.PagedDocument, "next_piece", failing)
    head, body, complete = await fetch(port, "/api/requests/http.har")
    assert head.startswith(b"HTTP/1.1 200") and not complete  # no last chunk: an error
    assert body.startswith(b'{"log": {"version": "1.2"') and not body.endswith(DOC_END)
    with pytest.raises(ValueError):
        json.loads(body)
    calls.clear()
    with pytest.raises(ConnectionResetError):  # HTTP/1.0 has no last chunk to miss: a reset
        await fetch(port, "/api/requests/http.har", version="1.0")
    assert (await fetch(port, "/api/tunnels"))[0].startswith(b"HTTP/1.1 200")


def _small_store(path: Path) -> None:
    """The varied corpus (three tunnels, text and binary bodies) and a WebSocket exchange."""
    redactor = Redactor(("authorization",), ("password",))
    with CaptureStore(path) as store:
        store.add([prepare(tunnel, record, redactor, 65536) for tunnel, record in corpus()])
        [ws] = store.add([_big_exchange(0, b"")])
        message = StreamMessage(1.7e9, "in", "text", 5, b"hello")
        store.add_messages([MessageUpdate(ws, "websocket", 0, [message] * 3, 0, "", True)])
        store.add([prepare(t, r, redactor, 65536) for t, r in corpus()[:10]])


@pytest.mark.parametrize(
    ("flt", "tunnel"),
    [
        ("", None),
        ("status:5xx", None),
        ("method:POST path:/api/*", None),
        ('body:"error"', None),
        ("", "backend"),
        ("-status:2xx", "hooks"),
        ("status:299", None),  # nothing
    ],
)
async def test_filters_and_tunnels_apply_page_after_page(tmp_path, serve, monkeypatch, flt, tunnel):
    path = tmp_path / "c.sqlite3"
    _small_store(path)
    port = await serve(path)
    monkeypatch.setattr(pages, "PAGE_ROWS", 4)  # many pages of a small store
    query = urlencode({"filter": flt, "tunnel_name": tunnel or ""})
    head, body, complete = await fetch(port, f"/api/requests/http.har?{query}")
    with CaptureStore(path, create=False) as store:
        found = store.select(parse(flt) if flt else None, tunnel=tunnel, full=True)
    assert complete and head.startswith(b"HTTP/1.1 200")
    assert (b"Transfer-Encoding: chunked" in head) == (len(found) >= 4)
    expected = har_log(found[::-1])
    assert json.loads(body) == expected and body == json.dumps(expected).encode() + b"\n"
    for limit in (0, 3, 10_000):
        head, body, complete = await fetch(port, f"/api/requests/http?limit={limit}&{query}")
        listed = {"uri": "/api/requests/http", "requests": [request_json(e) for e in found][:limit]}
        assert complete and json.loads(body) == listed
        assert body == json.dumps(listed).encode() + b"\n"  # as the listing was written before


async def test_an_empty_store_gives_an_empty_har(tmp_path, serve):
    port = await serve(tmp_path / "new.sqlite3")
    head, body, _ = await fetch(port, "/api/requests/http.har")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: " in head
    assert body == json.dumps(har_log([])).encode() + b"\n"
    assert json.loads(body)["log"]["entries"] == []


async def test_an_http_1_0_client_gets_the_har_close_delimited(tmp_path, serve, monkeypatch):
    path = tmp_path / "c.sqlite3"
    _small_store(path)
    port = await serve(path)
    monkeypatch.setattr(pages, "PAGE_ROWS", 4)
    head, body, _ = await fetch(port, "/api/requests/http.har", version="1.0")
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head  # no chunked there
    with CaptureStore(path, create=False) as store:
        expected = har_log(store.select(full=True, newest_first=False))
    assert body == json.dumps(expected).encode() + b"\n"


async def test_an_answer_not_read_is_dropped_with_what_it_buffered(monkeypatch):
    """close() would keep the unsent rest, and the connection, until the client read it: for a
    client that never does, forever (before: a 50 MiB answer stayed in memory)."""

    async def big(request):
        return api_server.ApiResponse(200, b"x" * (50 * MIB))

    monkeypatch.setattr(api_server, "WRITE_TIMEOUT", 0.5)
    server = await start_server(big, "127.0.0.1", 0)
    tracemalloc.start()
    try:
        head, _, writer = await send(server.sockets[0].getsockname()[1], "/")
        assert head.startswith(b"HTTP/1.1 200")
        await asyncio.sleep(2)  # past the write timeout; the client reads nothing
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        writer.close()
        server.close()
    assert held < 5 * MIB, held
