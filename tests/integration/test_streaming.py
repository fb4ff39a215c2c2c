"""Streams stay streams: SSE events arrive as they are sent, a long-poll does not hold up other
requests, big bodies pass both ways without being buffered, WebSockets pass through."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import time

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.support.apps import CHUNK, pattern, pattern_sha256
from tests.support.stack import Tunnel, tunnel_to

MB = 1024 * 1024


def client(t: Tunnel, **kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=t.base, headers={"Host": t.host}, timeout=60, **kw)


def rss_bytes() -> int:
    """Resident memory of this process (relay, agent and app all run in it here)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_sse_events_arrive_one_by_one(app_port):
    count, interval = 5, 0.1
    async with tunnel_to(app_port, "sse") as t, client(t) as c:
        started = time.perf_counter()
        arrivals: list[float] = []
        events: list[str] = []
        async with c.stream("GET", f"/sse?n={count}&interval={interval}") as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            async for line in resp.aiter_lines():
                if line.startswith("data:"):
                    arrivals.append(time.perf_counter() - started)
                    events.append(line)
        assert events == [f"data: event {i}" for i in range(count)]
        # The first event comes at once, long before the stream ends ...
        assert arrivals[0] < interval
        assert arrivals[-1] - arrivals[0] > (count - 1) * interval * 0.8
        # ... and each one arrives about when it was sent, not batched with the next.
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        assert all(gap > interval * 0.5 for gap in gaps), gaps


@pytest.mark.slow
async def test_slow_request_does_not_delay_a_fast_one(app_port):
    async with tunnel_to(app_port, "longpoll") as t, client(t) as slow, client(t) as fast:
        started = time.perf_counter()
        poll = asyncio.create_task(slow.get("/longpoll?seconds=3"))
        await asyncio.sleep(0.2)  # the long-poll is in flight on its own connection
        for _ in range(3):
            before = time.perf_counter()
            resp = await fast.get("/echo/fast")
            assert resp.status_code == 200
            assert time.perf_counter() - before < 1.0
        assert not poll.done()
        resp = await poll
        assert (resp.status_code, resp.text) == (200, "done waiting")
        assert 2.9 < time.perf_counter() - started < 5


@pytest.mark.slow
async def test_200mb_download_hash_checked(app_port):
    size = 200 * 1000 * 1000 + 7
    async with tunnel_to(app_port, "bigdown") as t, client(t) as c:
        digest = hashlib.sha256()
        received = 0
        async with c.stream("GET", f"/download?size={size}") as resp:
            assert int(resp.headers["content-length"]) == size
            async for piece in resp.aiter_raw():
                digest.update(piece)
                received += len(piece)
        assert received == size
        assert digest.hexdigest() == pattern_sha256(size)


@pytest.mark.slow
async def test_200mb_upload_hash_checked(app_port):
    size = 200 * 1000 * 1000 + 13
    block = pattern(CHUNK, seed=3)
    expected = hashlib.sha256()

    async def body():
        left = size
        while left:
            piece = block[: min(left, len(block))]
            expected.update(piece)
            left -= len(piece)
            yield piece

    async with tunnel_to(app_port, "bigup") as t, client(t) as c:
        resp = await c.put("/upload", content=body(), headers={"Content-Length": str(size)})
        assert resp.status_code == 200
        assert resp.json() == {"sha256": expected.hexdigest(), "length": size}


@pytest.mark.slow
async def test_a_whole_body_is_never_buffered(app_port):
    size = 200 * 1000 * 1000
    async with tunnel_to(app_port, "membound") as t, client(t) as c:
        # Warm up the allocator and every code path first.
        warm = await c.get("/download?size=20000000")
        assert len(warm.content) == 20_000_000
        del warm
        baseline = peak = rss_bytes()
        received = 0
        async with c.stream("GET", f"/download?size={size}") as resp:
            async for piece in resp.aiter_raw():
                received += len(piece)
                if received % (4 * MB) < len(piece):
                    peak = max(peak, rss_bytes())
        assert received == size
        assert peak - baseline < 64 * MB, f"memory grew by {(peak - baseline) // MB} MB"


async def test_websocket_passthrough(app_port):
    async with (
        tunnel_to(app_port, "ws") as t,
        ws_connect(
            f"ws://{t.host}/ws",
            host="127.0.0.1",
            port=t.relay.http_port,
            proxy=None,
            max_size=None,
        ) as ws,
    ):
        await ws.send("hello")
        assert await ws.recv() == "echo: hello"
        payload = os.urandom(1_000_000)
        await ws.send(payload)
        assert await ws.recv() == payload
        for i in range(20):
            await ws.send(f"message {i}")
        assert [await ws.recv() for _ in range(20)] == [f"echo: message {i}" for i in range(20)]
        # the agent logged the upgrade as one exchange that switched protocols
        (record,) = [r for r in t.records() if r.path == "/ws"]
        assert record.status == 101
