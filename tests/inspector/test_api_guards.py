"""The local API's guards on a real socket: hostile Host/Origin (DNS rebinding), oversized
heads and bodies, malformed requests, a slowloris head, unknown paths; loopback binding only."""

from __future__ import annotations

import asyncio

import pytest

from inspector import api_server
from inspector.api import InspectorApi, TunnelInfo
from inspector.api_server import start_server
from inspector.settings import CaptureSettings
from tests.inspector.records import exchange as record
from tests.inspector.records import fill


@pytest.fixture
async def api_port(tmp_path):
    tunnels = [TunnelInfo("web", "http://web.localhost:8080", "http://127.0.0.1:3000")]
    api = InspectorApi(CaptureSettings(path=tmp_path / "c.sqlite3"), lambda: tunnels)
    server = await start_server(api.handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    api.close()


async def exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    return answer


async def test_local_hosts_are_answered(api_port):
    for host in (f"localhost:{api_port}", "127.0.0.1", "[::1]:4040"):
        answer = await exchange(
            api_port, f"GET /api/tunnels HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        )
        assert answer.startswith(b"HTTP/1.1 200") and b'"public_url"' in answer


@pytest.mark.parametrize(
    "headers",
    [
        "Host: evil.example",
        "Host: evil.example:4040",
        "Host: 127.0.0.1.nip.io",
        "Host: localhost\r\nOrigin: http://evil.example",
        "Host: localhost\r\nOrigin: null",
        "X-No-Host: 1",
    ],
)
async def test_rebinding_hosts_and_foreign_origins_are_refused(api_port, headers):
    answer = await exchange(api_port, f"GET /api/tunnels HTTP/1.1\r\n{headers}\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 403"), answer
    assert b"public_url" not in answer


async def test_oversized_and_malformed_requests(api_port):
    big_head = b"GET / HTTP/1.1\r\nHost: localhost\r\nX: " + b"a" * 20000 + b"\r\n\r\n"
    assert (await exchange(api_port, big_head)).startswith(b"HTTP/1.1 431")
    big_body = (
        b"POST /api/requests/http HTTP/1.1\r\nHost: localhost\r\nContent-Length: 9999999\r\n\r\n"
    )
    assert (await exchange(api_port, big_body)).startswith(b"HTTP/1.1 413")
    chunked = (
        b"POST /api/requests/http HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    assert (await exchange(api_port, chunked)).startswith(b"HTTP/1.1 411")
    for junk in (b"\x16\x03\x01\x00\xff\r\n\r\n", b"GET / HTTP/9.9\r\nHost: localhost\r\n\r\n"):
        assert (await exchange(api_port, junk)).startswith(b"HTTP/1.1 400")
    bad_json = (
        b"POST /api/requests/http HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\n{x}"
    )
    assert (await exchange(api_port, bad_json)).startswith(b"HTTP/1.1 400")
    bad_filter = b"GET /api/requests/http?filter=dur:fast HTTP/1.1\r\nHost: localhost\r\n\r\n"
    assert b"bad filter" in await exchange(api_port, bad_filter)
    unknown = b"GET /api/nothing HTTP/1.1\r\nHost: localhost\r\n\r\n"
    assert (await exchange(api_port, unknown)).startswith(b"HTTP/1.1 404")
    wrong = b"PUT /api/tunnels HTTP/1.1\r\nHost: localhost\r\n\r\n"
    assert (await exchange(api_port, wrong)).startswith(b"HTTP/1.1 405")


async def test_a_slowloris_head_is_cut_off(api_port, monkeypatch):
    monkeypatch.setattr(api_server, "HEAD_TIMEOUT", 0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", api_port)
    writer.write(b"GET /api/tunnels HTTP/1.1\r\nHost: localhost\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408")


async def test_only_loopback_addresses_are_listened_on():
    async def nothing(request):
        raise AssertionError

    with pytest.raises(OSError, match="loopback only"):
        await start_server(nothing, "0.0.0.0", 0)


async def test_replays_that_cannot_be_sent_or_get_no_answer(tmp_path):
    path = tmp_path / "c.sqlite3"
    fill(
        path,
        [
            ("web", record("POST", "/cut", 200, req_body=b"x" * 5000)),
            ("web", record("POST", "/whole", 200, req_body=b"y" * 10)),
        ],
        body_cap=1000,
    )
    tunnels = [TunnelInfo("web", "http://web.localhost:8080", "http://127.0.0.1:1")]
    api = InspectorApi(CaptureSettings(path=path), lambda: tunnels)
    server = await start_server(api.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        post = "POST /api/requests/http/{} HTTP/1.1\r\nHost: localhost\r\n\r\n"
        cut = await exchange_bytes(port, post.format("1/replay"))
        assert cut.startswith(b"HTTP/1.1 400") and b"the body was cut at 1000 bytes" in cut
        dead = await exchange_bytes(port, post.format("2/replay"))
        assert dead.startswith(b"HTTP/1.1 502") and b"cannot reach http://127.0.0.1:1" in dead
        missing = await exchange_bytes(port, post.format("99/replay"))
        assert missing.startswith(b"HTTP/1.1 404")
        ngrok = await exchange_bytes(
            port,
            "POST /api/requests/http HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n[]",
        )
        assert ngrok.startswith(b"HTTP/1.1 400") and b'{\\"id\\"' in ngrok
        cleared = await exchange_bytes(
            port, "DELETE /api/requests/http HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
        assert cleared.startswith(b"HTTP/1.1 204")
        listed = await exchange_bytes(
            port, "GET /api/requests/http HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
        assert listed.endswith(b'"requests": []}\n')
    finally:
        server.close()
        api.close()


async def exchange_bytes(port: int, text: str) -> bytes:
    return await exchange(port, text.encode())
