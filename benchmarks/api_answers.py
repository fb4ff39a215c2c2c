"""The local API's big answers (the HAR, a 10,000-row listing): memory, time, event-loop stalls.

    python benchmarks/api_answers.py [--exchanges 2000] [--body-kib 100]

Builds a store of N exchanges with bodies of the given size (half text, half binary: base64 in
the answers), serves it with the real InspectorApi on a loopback port in this process, and reads
each answer with a plain socket client that keeps nothing but a byte count. For each answer it
prints its size, the time to read it, the Python memory the process allocated above what it held
before (tracemalloc's peak: the server and the client, which holds one 1 MiB read at most), and
the longest the event loop went without running a 5 ms ticker (what a tunnel sharing the loop
would have waited).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspector import CaptureStore
from inspector.api import InspectorApi
from inspector.api_server import start_server
from inspector.model import StoredBody, StoredExchange
from inspector.settings import CaptureSettings

MIB = 1024 * 1024


def _exchange(i: int, body: bytes, kind: bytes) -> StoredExchange:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
    return StoredExchange(
        id=0, tunnel="web", time=1.7e9 + i, method="GET", path=f"/item/{i}", status=200,
        duration_ms=12.5, ttfb_ms=3.0, bytes_in=60, bytes_out=len(body) + 80,
        client="203.0.113.7", http_version="1.1",
        request_head=f"GET /item/{i} HTTP/1.1\r\nHost: app.example\r\n\r\n".encode(),
        response_head=head % (kind, len(body)), request_body=StoredBody(),
        response_body=StoredBody(body, False, len(body), None),
    )  # fmt: skip


def build(path: Path, count: int, body_size: int) -> None:
    text = (b"the quick brown fox jumps over the lazy dog " * (body_size // 44 + 1))[:body_size]
    with CaptureStore(path, max_bytes=4096 * MIB) as store:
        for start in range(0, count, 200):
            store.add(
                [
                    _exchange(i, text, b"text/plain")
                    if i % 2
                    else _exchange(i, os.urandom(body_size), b"application/octet-stream")
                    for i in range(start, min(count, start + 200))
                ]
            )


async def fetch(port: int, target: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    total = 0
    while chunk := await reader.read(MIB):
        total += len(chunk)
    writer.close()
    return total


async def measure(port: int, target: str) -> None:
    stalls = [0.0]
    running = True

    async def ticker() -> None:
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            stalls[0] = max(stalls[0], now - last - 0.005)
            last = now

    tick = asyncio.create_task(ticker())
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    size = await fetch(port, target)
    took = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    running = False
    await tick
    print(
        f"{target:40} {size / MIB:8.1f} MiB in {took:6.2f} s; peak Python memory "
        f"+{peak / MIB:7.1f} MiB ({peak / size:5.2f}x the answer); longest loop stall "
        f"{stalls[0] * 1000:6.0f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exchanges", type=int, default=2000)
    parser.add_argument("--body-kib", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.sqlite3"
        build(path, args.exchanges, args.body_kib * 1024)
        size = path.stat().st_size / MIB
        print(f"{args.exchanges} exchanges, {args.body_kib} KiB bodies: store {size:.0f} MiB")
        api = InspectorApi(CaptureSettings(path=path, max_bytes=4096 * MIB), lambda: [])
        server = await start_server(api.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        await fetch(port, "/api/requests/http?limit=1")  # the store opened, outside the figures
        for target in ("/api/requests/http.har", "/api/requests/http?limit=10000"):
            await measure(port, target)
        server.close()
        api.close()


if __name__ == "__main__":
    asyncio.run(main())
