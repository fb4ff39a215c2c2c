"""The agent's request log: one record per exchange, in order, with the right figures.

The agent observes responses after they have left (off the latency path), so these cases
check that the deferred observation still pairs every response with its request: keep-alive,
pipelining, HEAD, a body delimited by the connection's close, and a WebSocket upgrade.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from websockets.asyncio.client import connect as ws_connect

from relay.events import RequestRecord
from tests.support.stack import Tunnel, open_raw, raw_request, read_response, tunnel_to
from tests.support.waiting import eventually

CLOSE_BODY = 5000


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer each request by its path: /close ends the body by closing; others are sized."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target = head.split(b" ", 2)[:2]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            if target == b"/close":
                writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"c" * CLOSE_BODY)
                await writer.drain()
                return
            body = b"x" * (100 + len(target))
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n" % len(body))
            if method != b"HEAD":
                writer.write(body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@asynccontextmanager
async def sized_app() -> AsyncIterator[int]:
    server = await asyncio.start_server(_answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def records_when(t: Tunnel, count: int) -> list[RequestRecord]:
    await eventually(lambda: len(t.records()) >= count, 2.0, f"{count} records")
    return t.records()


async def test_keep_alive_pipelined_and_head_requests_are_paired_in_order():
    async with sized_app() as port, tunnel_to(port, "records") as t:
        reader, writer = await open_raw(t.relay.http_port)
        responses = []
        writer.write(raw_request(t.host, "/first"))
        responses.append(await read_response(reader))
        writer.write(raw_request(t.host, "/posted", "POST", body=b"p" * 300))
        responses.append(await read_response(reader))
        writer.write(raw_request(t.host, "/head", "HEAD"))
        responses.append(await read_response(reader, head_only=True))
        # Two requests in one write: the responses come back to back on one stream.
        writer.write(raw_request(t.host, "/p1") + raw_request(t.host, "/p22"))
        responses += [await read_response(reader) for _ in range(2)]
        writer.close()
        records = await records_when(t, 5)
    assert [r.status for r in responses] == [201] * 5
    assert [r.body for r in responses[3:]] == [b"x" * 103, b"x" * 104]
    assert [(r.method, r.path, r.status) for r in records] == [
        ("GET", "/first", 201),
        ("POST", "/posted", 201),
        ("HEAD", "/head", 201),
        ("GET", "/p1", 201),
        ("GET", "/p22", 201),
    ]
    assert records[1].bytes_in > 300  # the head the app received, and the body
    for record, response in zip(records, responses, strict=True):
        assert record.bytes_out == len(response.head) + len(response.body), record.path
        assert record.duration_ms >= 0 and record.stream == records[0].stream
    assert responses[2].body == b""  # HEAD: no body followed, none was counted


async def test_a_body_ended_by_the_close_is_counted_whole():
    async with sized_app() as port, tunnel_to(port, "records") as t:
        reader, writer = await open_raw(t.relay.http_port)
        writer.write(raw_request(t.host, "/close"))
        response = await read_response(reader)
        writer.close()
        (record,) = await records_when(t, 1)
    assert response.body == b"c" * CLOSE_BODY
    assert (record.path, record.status) == ("/close", 200)
    assert record.bytes_out == len(response.head) + CLOSE_BODY


async def test_a_websocket_upgrade_is_one_101_record_and_its_messages_none(app_port):
    async with tunnel_to(app_port, "records") as t:
        url = f"ws://{t.host}/ws"  # *.localhost, dialled at the relay's address
        async with ws_connect(url, host="127.0.0.1", port=t.relay.http_port, proxy=None) as ws:
            for i in range(3):
                await ws.send(f"m{i}")
                assert await ws.recv() == f"echo: m{i}"
        # An ordinary request after it, on a new connection, is logged after the upgrade.
        reader, writer = await open_raw(t.relay.http_port)
        writer.write(raw_request(t.host, "/echo/after"))
        assert (await read_response(reader)).status == 200
        writer.close()
        records = await records_when(t, 2)
    assert [(r.method, r.path, r.status) for r in records] == [
        ("GET", "/ws", 101),
        ("GET", "/echo/after", 200),
    ]
