"""The local app sees what the visitor sent: heads byte for byte (plus three forwarding lines),
binary and chunked bodies unchanged, keep-alive and pipelining intact, interim responses and
bodiless responses framed correctly."""

from __future__ import annotations

import asyncio
import hashlib
import os

import httpx
import pytest

from tests.support.apps import pattern, pattern_sha256, raw_server
from tests.support.stack import (
    Tunnel,
    open_raw,
    raw_request,
    read_response,
    tunnel_to,
)
from tests.support.waiting import eventually


def forwarding_lines(t: Tunnel, ip: str = "127.0.0.1") -> bytes:
    return (
        f"X-Forwarded-For: {ip}\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: {t.host}\r\n\r\n"
    ).encode()


def client(t: Tunnel, **kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=t.base, headers={"Host": t.host}, timeout=20, **kw)


async def test_every_header_line_reaches_the_app_byte_exact():
    async with raw_server() as app, tunnel_to(app.port, "exact") as t:
        reader, writer = await open_raw(t.relay.http_port)
        head = (
            f"GET /path/%7Eweird?q=1&q=2 HTTP/1.1\r\nHost: {t.host}\r\n"
            "x-custom: One\r\nX-CUSTOM:   two\r\nACCEPT: */*\r\nx-Custom: three\r\n"
            "Cookie: a=1\r\nCookie: b=2\r\nuser-agent: raw/1.0 (test)\r\n"
            "X-Empty:\r\nX-Tab:\tvalue\r\n\r\n"
        ).encode()
        writer.write(head)
        response = await read_response(reader)
        assert response.status == 200 and response.body == b"ok"
        assert bytes(app.received) == head[:-2] + forwarding_lines(t)
        writer.close()


async def test_second_request_on_a_connection_is_forwarded_exactly_too():
    async with raw_server() as app, tunnel_to(app.port, "exact2") as t:
        reader, writer = await open_raw(t.relay.http_port)
        first = raw_request(t.host, "/1", headers=[("X-A", "1")])
        second = raw_request(t.host, "/2", "POST", [("x-b", "2"), ("X-B", "3")], b"")
        writer.write(first)
        await read_response(reader)
        writer.write(second)
        await read_response(reader)
        assert app.heads() == [first[:-2] + forwarding_lines(t), second[:-2] + forwarding_lines(t)]
        writer.close()


async def test_client_sent_forwarding_headers_are_replaced():
    async with raw_server() as app, tunnel_to(app.port, "forged") as t:
        reader, writer = await open_raw(t.relay.http_port)
        writer.write(
            (
                f"GET / HTTP/1.1\r\nHost: {t.host}\r\nX-Forwarded-For: 6.6.6.6\r\n"
                "Accept: */*\r\nx-forwarded-host: evil.example\r\n\r\n"
            ).encode()
        )
        await read_response(reader)
        assert bytes(app.received) == (
            f"GET / HTTP/1.1\r\nHost: {t.host}\r\nAccept: */*\r\n".encode() + forwarding_lines(t)
        )
        writer.close()


async def test_binary_bodies_arrive_unchanged(app_port):
    body = bytes(range(256)) * 64 + os.urandom(300_000) + b"\r\n\r\n0\r\n\r\n"
    async with tunnel_to(app_port, "binary") as t, client(t) as c:
        resp = await c.post("/echo", content=body)
        assert resp.status_code == 200
        assert resp.json()["sha256"] == hashlib.sha256(body).hexdigest()
        assert resp.json()["length"] == len(body)
        resp = await c.get("/download?size=1000003")
        assert hashlib.sha256(resp.content).hexdigest() == pattern_sha256(1_000_003)


async def test_keep_alive_200_requests_use_one_connection(app_port):
    async with (
        tunnel_to(app_port, "keepalive") as t,
        client(t, limits=httpx.Limits(max_connections=1)) as c,
    ):
        before = t.relay.requests
        ports = set()
        for _ in range(200):
            resp = await c.get("/peer")
            assert resp.status_code == 200
            ports.add(resp.json()["port"])
        assert len(ports) == 1  # one local connection at the app: one stream
        assert t.relay.requests - before == 200
        assert len(t.relay.public_connections) == 1
        assert len(t.agent.link.streams) == 1


async def test_chunked_request_body(app_port):
    pieces = [pattern(10_000 + i * 977, seed=i) for i in range(40)]
    expected = hashlib.sha256(b"".join(pieces)).hexdigest()

    async def body():
        for piece in pieces:
            yield piece
            await asyncio.sleep(0)

    async with tunnel_to(app_port, "chunkup") as t, client(t) as c:
        resp = await c.post("/echo", content=body())
        data = resp.json()
        assert data["chunked"] is True
        assert data["sha256"] == expected
        assert data["length"] == sum(map(len, pieces))


async def test_chunked_response(app_port):
    size = 3_000_017
    async with tunnel_to(app_port, "chunkdown") as t, client(t) as c:
        async with c.stream("GET", f"/download?size={size}&chunked=1") as resp:
            assert resp.headers["transfer-encoding"] == "chunked"
            digest = hashlib.sha256()
            async for piece in resp.aiter_bytes():
                digest.update(piece)
        assert digest.hexdigest() == pattern_sha256(size)
        # the same connection is still usable afterwards
        assert (await c.get("/")).text == "hello from the local app"


async def test_expect_100_continue(app_port):
    body = b"x" * 5000
    async with tunnel_to(app_port, "continue") as t:
        reader, writer = await open_raw(t.relay.http_port)
        writer.write(
            raw_request(t.host, "/echo", "POST", [("Expect", "100-continue")], body)[: -len(body)]
        )
        interim = await read_response(reader, timeout=3)
        assert interim.status == 100
        assert interim.head.startswith(b"HTTP/1.1 100")
        writer.write(body)
        final = await read_response(reader)
        assert final.status == 200
        assert final.body and b'"length": 5000' in final.body
        writer.close()
        await eventually(lambda: any(r.path == "/echo" for r in t.records()), 3.0)
        (record,) = [r for r in t.records() if r.path == "/echo"]
        assert record.status == 200


async def test_head_204_304_then_another_request_on_the_same_connection(app_port):
    async with tunnel_to(app_port, "nobody") as t:
        reader, writer = await open_raw(t.relay.http_port)
        for method, path, status in [
            ("HEAD", "/status/200", 200),
            ("GET", "/status/204", 204),
            ("GET", "/status/304", 304),
            ("HEAD", "/", 200),
        ]:
            writer.write(raw_request(t.host, path, method))
            resp = await read_response(reader, head_only=method == "HEAD")
            assert resp.status == status
            assert resp.body == b""
        writer.write(raw_request(t.host, "/"))
        resp = await read_response(reader)
        assert (resp.status, resp.body) == (200, b"hello from the local app")
        # nothing else arrives: no stray body bytes were left in the stream
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await reader.read(1)
        writer.close()
        # the agent framed each bodiless response correctly
        await eventually(lambda: len(t.records()) == 5, 3.0)
        assert [(r.method, r.path, r.status) for r in t.records()] == [
            ("HEAD", "/status/200", 200),
            ("GET", "/status/204", 204),
            ("GET", "/status/304", 304),
            ("HEAD", "/", 200),
            ("GET", "/", 200),
        ]


async def test_pipelined_requests_are_answered_in_order(app_port):
    async with tunnel_to(app_port, "pipeline") as t:
        reader, writer = await open_raw(t.relay.http_port)
        paths = [f"/echo/{i}" for i in range(8)]
        writer.write(
            b"".join(
                raw_request(t.host, path, "POST", body=b"b" * i) for i, path in enumerate(paths)
            )
        )
        for i, path in enumerate(paths):
            resp = await read_response(reader)
            assert resp.status == 200
            data = resp.body.decode()
            assert f'"path": "{path}"' in data
            assert f'"length": {i}' in data
        writer.close()
        # the agent paired each request with its own response
        await eventually(lambda: len(t.records()) == len(paths), 3.0)
        assert [(r.path, r.status) for r in t.records()] == [(path, 200) for path in paths]
        assert [r.bytes_in for r in t.records()] == sorted(r.bytes_in for r in t.records())


async def test_half_closed_client_still_gets_its_response():
    async with raw_server() as app, tunnel_to(app.port, "halfclose") as t:
        reader, writer = await open_raw(t.relay.http_port)
        writer.write(raw_request(t.host, "/", "POST", body=b"abc"))
        writer.write_eof()  # "I am done sending"; the answer must still come back
        async with asyncio.timeout(3):
            data = await reader.read()
        assert data == app.response
        writer.close()
        await eventually(lambda: not t.relay.public_connections and not t.agent.link.streams, 3.0)


async def test_request_head_arriving_in_pieces(app_port):
    async with tunnel_to(app_port, "pieces") as t:
        reader, writer = await open_raw(t.relay.http_port)
        data = raw_request(t.host, "/echo/slow", "POST", [("X-A", "1")], b"body!")
        for i in range(0, len(data), 7):
            writer.write(data[i : i + 7])
            await writer.drain()
            await asyncio.sleep(0.005)
        resp = await read_response(reader)
        assert resp.status == 200
        assert b'"length": 5' in resp.body
        writer.close()


async def test_refused_upgrade_keeps_the_relay_in_charge_of_later_requests():
    async with raw_server() as app, tunnel_to(app.port, "noupgrade") as t:
        reader, writer = await open_raw(t.relay.http_port)
        writer.write(
            raw_request(
                t.host, "/ws", headers=[("Connection", "Upgrade"), ("Upgrade", "websocket")]
            )
        )
        assert (await read_response(reader)).status == 200  # the app said no: still HTTP/1.1
        second = raw_request(t.host, "/after")
        writer.write(second)
        assert (await read_response(reader)).status == 200
        assert app.heads()[1] == second[:-2] + forwarding_lines(t)
        writer.close()


async def test_requests_after_a_refused_upgrade_are_still_logged():
    async with raw_server() as app, tunnel_to(app.port, "upgradelog") as t:
        reader, writer = await open_raw(t.relay.http_port)
        upgrade = [("Connection", "Upgrade"), ("Upgrade", "websocket")]
        writer.write(raw_request(t.host, "/ws", headers=upgrade))
        await read_response(reader)
        writer.write(raw_request(t.host, "/after"))
        await read_response(reader)
        await eventually(lambda: len(t.records()) >= 2, timeout=0.3)
        assert [(r.path, r.status) for r in t.records()] == [("/ws", 200), ("/after", 200)]
        writer.close()
