"""WebSocket messages and SSE events through a real relay and agent: a websockets echo server
behind `molehill http` (its messages in `requests show --json` and the local API while the
connection is open, and in the HAR export), and a streaming SSE server (its events as they
arrived), with secrets in the previews redacted."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from haralyzer import HarEntry, HarParser
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from inspector import CaptureSettings, open_writer
from relay.events import RequestRecord
from tests.inspector.har_schema import check_har
from tests.inspector.test_api_live import api_url, requests_cli_async
from tests.support.cli import molehill_process
from tests.support.stack import agent_for, running_relay

SECRET = "hunter2-planted-secret"


@asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    async def echo(ws) -> None:  # type: ignore[no-untyped-def]
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, compression=None) as server:
        yield server.sockets[0].getsockname()[1]


async def _poll(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


async def test_websocket_messages_in_show_the_api_and_har(tmp_path):
    store = tmp_path / "captures.sqlite3"
    async with (
        echo_server() as port,
        running_relay() as relay,
        molehill_process(
            "http", str(port), "--relay", relay.agents_url, "--subdomain", "chat", "--json",
            "--api", "127.0.0.1:0", env={"MOLEHILL_CAPTURE_FILE": str(store)},
        ) as agent,
    ):  # fmt: skip
        api = await api_url(agent)
        assert json.loads(await agent.line())["event"] == "tunnel_open"
        url = f"ws://chat.localhost:{relay.http_port}/socket?access_token={SECRET}"
        # The URL names the tunnel (Host); the socket goes to the relay on loopback.
        where = {"host": "127.0.0.1", "port": relay.http_port}
        async with connect(url, compression=None, **where) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01binary")
            assert await ws.recv() == b"\x00\x01binary"
            await ws.send(json.dumps({"password": SECRET, "n": 1}))
            await ws.recv()
            await ws.send("x" * 100_000)  # a 64-bit length: only its preview is kept
            await ws.recv()
            await ws.ping(b"are you there")

            # While it is open, the messages reach the store (every half second).
            async def stored() -> dict | None:
                code, out, _ = await requests_cli_async(store, "list", "--json")
                if code or not out.strip():
                    return None
                row = json.loads(out.splitlines()[0])
                code, out, _ = await requests_cli_async(store, "show", str(row["id"]), "--json")
                data = json.loads(out)
                m = data["messages"]
                return data if m and m["kept"] >= 10 else None

            live = await _poll(stored)
            assert live is not None, "the messages did not reach the store while open"
            assert live["status"] == 101 and live["messages"]["open"] is True
            async with httpx.AsyncClient(base_url=api) as c:
                one = (await c.get(f"/api/requests/http/{live['id']}")).json()
            assert one["messages"]["protocol"] == "websocket"
            assert len(one["messages"]["items"]) >= 10
        assert await agent.terminate() == 0

    code, out, err = await requests_cli_async(store, "show", str(live["id"]), "--json")
    assert code == 0, err
    messages = json.loads(out)["messages"]
    assert messages["open"] is False and messages["dropped"] == 0
    items = messages["items"]
    got = [(m["direction"], m["kind"], m["size"]) for m in items]
    assert got[:8] == [
        ("in", "text", 5), ("out", "text", 5),
        ("in", "binary", 8), ("out", "binary", 8),
        ("in", "text", got[4][2]), ("out", "text", got[4][2]),
        ("in", "text", 100_000), ("out", "text", 100_000),
    ]  # fmt: skip
    assert ("in", "ping", 13) in got and ("out", "pong", 13) in got
    assert got[-2:] == [("in", "close", 2), ("out", "close", 2)]  # the client's close, echoed
    assert items[0]["text"] == "hello" and items[2]["base64"] == "AAFiaW5hcnk="
    assert items[6]["text"] == "x" * 256 and items[6]["preview_truncated"]
    assert '"password":"[redacted]"' in items[4]["text"]
    times = [m["time"] for m in items]
    assert times == sorted(times) and abs(times[0] - time.time()) < 120
    assert SECRET not in out
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert SECRET.encode() not in on_disk

    text_out = await requests_cli_async(store, "show", str(live["id"]))
    assert "WebSocket messages: " in text_out[1] and "→ text" in text_out[1]

    har_file = tmp_path / "out.har"
    code, _, err = await requests_cli_async(store, "export", "--har", str(har_file))
    assert code == 0, err
    document = json.loads(har_file.read_text())
    check_har(document)  # HAR 1.2, molehill's and Chrome's fields being "_" fields
    [loaded] = [HarEntry(e) for e in HarParser(document).har_data["entries"]]
    assert (loaded.request.method, loaded.status) == ("GET", 101)  # a real HAR reader loads it
    [entry] = document["log"]["entries"]
    assert entry["_resourceType"] == "websocket"
    har = entry["_webSocketMessages"]
    assert har[0] == {"type": "send", "time": items[0]["time"], "opcode": 1, "data": "hello"}
    assert har[1]["type"] == "receive" and har[2]["opcode"] == 2
    assert har[2]["data"] == "AAFiaW5hcnk="  # binary: base64, as Chrome writes it


@asynccontextmanager
async def sse_server(events: list[bytes], gap: float) -> AsyncIterator[int]:
    """A streaming event source: chunked, one chunk per piece, ``gap`` seconds apart."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n\r\n"
        )
        for piece in events:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(gap)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_sse_events_as_they_arrived(tmp_path):
    pieces = [
        b": hello\n\nevent: tick\nid: 1\ndata: one\n\n",
        b"data: two\r\ndata: lines\r\n",  # the event ends in the next piece
        b'\r\nevent: secret\ndata: {"token": "' + SECRET.encode() + b'"}\n\n',
        b"".join(b"data: %d\n\n" % i for i in range(10)),
    ]
    store = tmp_path / "captures.sqlite3"
    settings = CaptureSettings(path=store)
    writer = open_writer(settings)
    assert writer is not None
    try:
        async with (
            sse_server(pieces, 0.2) as port,
            running_relay() as relay,
            agent_for(relay, port, "feed", capture_bytes=settings.body_cap) as tunnel,
        ):
            tunnel.agent.on_event = lambda e: (
                writer.submit("feed", e) if type(e) is RequestRecord else None
            )
            async with (
                httpx.AsyncClient(base_url=tunnel.base) as c,
                c.stream("GET", "/events", headers={"Host": tunnel.host}) as r,
            ):
                assert r.headers["content-type"] == "text/event-stream"
                body = b"".join([chunk async for chunk in r.aiter_bytes()])
            assert body == b"".join(pieces)  # the bytes passed untouched
        await asyncio.to_thread(writer.flush)
    finally:
        await asyncio.to_thread(writer.close)

    code, out, err = await requests_cli_async(store, "list", "--json")
    row = json.loads(out.splitlines()[0])
    code, out, err = await requests_cli_async(store, "show", str(row["id"]), "--json")
    assert code == 0, err
    messages = json.loads(out)["messages"]
    assert messages["protocol"] == "sse" and messages["open"] is False
    items = messages["items"]
    got = [(m["event"], m["id"], m["text"]) for m in items]
    assert got[:3] == [
        ("tick", "1", "one"),
        ("message", "1", "two\nlines"),
        ("secret", "1", '{"token":"[redacted]"}'),
    ]
    assert [t for _, _, t in got[3:]] == [str(i) for i in range(10)]
    times = [m["time"] for m in items]
    assert times[1] - times[0] >= 0.15 and times[3] - times[2] >= 0.15  # as they arrived
    assert SECRET not in out
