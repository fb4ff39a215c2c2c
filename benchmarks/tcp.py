"""TCP tunnel benchmark: bulk throughput and connection setup rate, direct vs through a tunnel.

    .venv/bin/python benchmarks/tcp.py [--megabytes 500] [--seconds 3]

Starts a local TCP service (a child process), `molehill relay --tcp-ports ...` and
`molehill tcp PORT --json`, then measures the same client against the service directly and
through the tunnel's tcp:// port, in the same run: MB/s of one connection reading N MB the
service writes, and connections per second (open, 1 byte each way, close; 8 at a time).
Not part of benchmarks/run.py's suite (it needs no wrk); prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
from collections.abc import Awaitable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHUNK = b"x" * (256 * 1024)


async def serve() -> None:
    """The local service: first byte "b" -> write N MB (N in the next line); "e" -> echo."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            kind = await reader.readexactly(1)
            if kind == b"b":
                size = int(await reader.readline()) * 1024 * 1024
                while size > 0:
                    writer.write(CHUNK[: min(size, len(CHUNK))])
                    size -= len(CHUNK)
                    await writer.drain()
            else:
                writer.write(kind)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


async def bulk(port: int, megabytes: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    writer.write(f"b{megabytes}\n".encode())
    got = 0
    while data := await reader.read(1024 * 1024):
        got += len(data)
    elapsed = time.perf_counter() - started
    writer.close()
    assert got == megabytes * 1024 * 1024, got
    return megabytes / elapsed


async def setup_rate(port: int, seconds: float, parallel: int = 8) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"e")
            assert await reader.readexactly(1) == b"e"
            writer.close()
            await writer.wait_closed()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(parallel)))
    return done / (time.perf_counter() - started)


async def step(what: str, work: Awaitable[float]) -> float:
    """One measurement, with a deadline: a stalled tunnel is a failure, not a hang."""
    print(f"{what}...", file=sys.stderr, flush=True)
    async with asyncio.timeout(120):
        return await work


async def child(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    while await proc.stdout.read(65536):
        pass


async def line(proc: asyncio.subprocess.Process, contains: str = "") -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        while True:
            text = (await proc.stdout.readline()).decode()
            if not text:
                raise RuntimeError("a child exited before it was ready")
            if contains in text:
                return text.strip()


def _status_mib(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as status:
        for row in status:
            if row.startswith(field + ":"):
                return round(int(row.split()[1]) / 1024, 1)
    return float("nan")


def rss_mib(pid: int) -> float:
    return _status_mib(pid, "VmRSS")


def peak_rss_mib(pid: int) -> float:
    return _status_mib(pid, "VmHWM")


async def main(args: argparse.Namespace) -> dict[str, object]:
    py = sys.executable
    first = random.randrange(21000, 29000, 100)
    procs = []
    drain: asyncio.Task[None] | None = None
    try:
        app = await child(py, __file__, "--serve")
        procs.append(app)
        app_port = int(await line(app))
        relay = await child(
            py, "-m", "tui.cli", "relay", "--http", "127.0.0.1:0", "--agents", "127.0.0.1:0",
            "--tcp-ports", f"{first}-{first + 99}",
        )  # fmt: skip
        procs.append(relay)
        agents = (await line(relay, "agents")).split()[1]
        agent = await child(py, "-m", "tui.cli", "tcp", str(app_port), "--relay", agents, "--json")
        procs.append(agent)
        port = int(json.loads(await line(agent, "tunnel_open"))["url"].rsplit(":", 1)[1])
        # Its connection lines are read (and dropped) as a user's terminal or pipe would.
        drain = asyncio.create_task(_drain(agent))
        await bulk(app_port, 50)  # warm-up
        await bulk(port, 50)
        rss_before = {"relay": rss_mib(relay.pid), "agent": rss_mib(agent.pid)}
        direct_mb = await step("bulk direct", bulk(app_port, args.megabytes))
        tunnel_mb = await step("bulk tunnel", bulk(port, args.megabytes))
        # The kernel's high-water mark: the most each process ever held, the bulk run included.
        peak = {"relay": peak_rss_mib(relay.pid), "agent": peak_rss_mib(agent.pid)}
        direct_rate = await step("setup direct", setup_rate(app_port, args.seconds))
        tunnel_rate = await step("setup tunnel", setup_rate(port, args.seconds))
    finally:
        if drain is not None:
            drain.cancel()
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                print(f"pid {proc.pid} ignored SIGTERM for 10 s: killed", file=sys.stderr)
                proc.kill()
                await proc.wait()
    return {
        "megabytes": args.megabytes,
        "throughput_mb_s": {"direct": round(direct_mb), "tunnel": round(tunnel_mb)},
        "throughput_ratio": round(tunnel_mb / direct_mb, 3),
        "connections_per_s": {"direct": round(direct_rate), "tunnel": round(tunnel_rate)},
        "setup_rate_ratio": round(tunnel_rate / direct_rate, 3),
        "rss_mib_before_bulk": rss_before,
        "peak_rss_mib": peak,
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--megabytes", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=3.0)
    options = parser.parse_args()
    if options.serve:
        asyncio.run(serve())
    else:
        print(json.dumps(asyncio.run(main(options))))
