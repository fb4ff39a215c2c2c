"""The 1 GB transfer: download and upload through the tunnel vs direct, at bounded memory.

Client (run as a subprocess, pinned to the load core; prints one JSON object)::

    python benchmarks/transfer.py download --port P --host-header H --size 1000000000
    python benchmarks/transfer.py upload   --port P --host-header H --size 1000000000

``download`` sends ``GET /stream?size=N`` and reads the N-byte body into one reused 1 MiB buffer;
``upload`` sends ``POST /upload`` with ``Content-Length: N`` from one reused 1 MiB buffer and
reads the app's answer (the byte count it received, checked against N). Plain blocking sockets:
on loopback one Python thread moves several GB/s this way, far above the tunnel. The time runs
from the first byte written to the last byte of the response.

The scenario (``Transfer``) runs on a fresh app + relay + agent (memory figures need processes
with no history: RSS seldom shrinks), warms them up with a 1 MB transfer each way, lets their
RSS settle, then for each direction transfers N bytes directly and through the tunnel while
memory.RssSampler polls the relay's and the agent's VmRSS every 10 ms. Reported: MB/s (10^6
bytes of body per second) and each process's peak RSS growth over its idle RSS just before.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path

from cpuwatch import CpuMeter
from loadgen import LoadResult
from memory import RssSampler, mib, wait_settled
from scenarios import Context, Metric, Scenario, ScenarioResult
from stack import Stack, run_json_client

HERE = Path(__file__).resolve().parent
BUFFER = 1 << 20
GB = 1_000_000_000


def _connect(port: int, host: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection((host, port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """(status, headers lower-cased, body bytes already read)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before the response head: {data[:200]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def download(port: int, host_header: str, size: int) -> dict:
    with _connect(port) as sock:
        request = (
            f"GET /stream?size={size} HTTP/1.1\r\nHost: {host_header}\r\n"
            "User-Agent: molehill-bench\r\n\r\n"
        ).encode()
        started = time.perf_counter()
        sock.sendall(request)
        status, headers, rest = _read_head(sock)
        first = time.perf_counter()
        length = int(headers.get("content-length", "-1"))
        got = len(rest)
        buf = bytearray(BUFFER)
        while got < length:
            n = sock.recv_into(buf)
            if not n:
                break
            got += n
        done = time.perf_counter()
    return {
        "direction": "download",
        "status": status,
        "bytes": got,
        "expected": size,
        "seconds": done - started,
        "ttfb_s": first - started,
        "ok": status == 200 and got == size,
    }


def upload(port: int, host_header: str, size: int) -> dict:
    chunk = memoryview(bytes(range(256)) * (BUFFER // 256))
    with _connect(port) as sock:
        head = (
            f"POST /upload HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: molehill-bench\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
        ).encode()
        started = time.perf_counter()
        sock.sendall(head)
        left = size
        while left > 0:
            n = min(left, BUFFER)
            sock.sendall(chunk[:n])
            left -= n
        sent = time.perf_counter()
        status, headers, rest = _read_head(sock)
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            more = sock.recv(65536)
            if not more:
                break
            rest += more
        done = time.perf_counter()
    received = int(rest.strip() or b"-1") if status == 200 else -1
    return {
        "direction": "upload",
        "status": status,
        "bytes": received,
        "expected": size,
        "seconds": done - started,
        "send_s": sent - started,
        "ok": status == 200 and received == size,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Download or upload N bytes, print JSON.")
    parser.add_argument("direction", choices=("download", "upload"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host-header", required=True)
    parser.add_argument("--size", type=int, default=GB)
    args = parser.parse_args(argv)
    run = download if args.direction == "download" else upload
    print(json.dumps(run(args.port, args.host_header, args.size)))
    return 0


# -- the scenario ----------------------------------------------------------------------------------

QUICK_SIZE = 100_000_000


def _size_label(size: int) -> str:
    return f"{size / GB:g} GB" if size >= GB else f"{size / 1e6:g} MB"


def run_client(
    direction: str, port: int, host_header: str, size: int, cpus: set[int] | None
) -> dict:
    cmd = [
        sys.executable,
        str(HERE / "transfer.py"),
        direction,
        "--port",
        str(port),
        "--host-header",
        host_header,
        "--size",
        str(size),
    ]
    # gives up below 5 MB/s
    return run_json_client(cmd, cpus, size / 5e6 + 60, "transfer client")


class Transfer(Scenario):
    key = "transfer"
    title = "1 GB transfer"

    def size(self, ctx: Context) -> int:
        return QUICK_SIZE if ctx.quick else GB

    def how(self, ctx: Context) -> str:
        size = self.size(ctx)
        scaled = " (--quick: scaled down from 1 GB)" if ctx.quick else ""
        return (
            f"{_size_label(size)} download (GET /stream) and upload (POST /upload), one "
            f"connection, direct and through a fresh relay + agent; VmRSS polled every "
            f"10 ms{scaled}"
        )

    def run(self, ctx: Context) -> ScenarioResult:
        stack = ctx.fresh_stack("transfer")
        try:
            stack.start(timeout=ctx.tunnel_timeout)
            return self._measure(ctx, stack)
        finally:
            stack.stop()

    def _measure(self, ctx: Context, stack: Stack) -> ScenarioResult:
        size, cpus = self.size(ctx), ctx.pinning.load
        sides = {
            "direct": (stack.app_port, stack.direct_host),
            "tunnel": (stack.http_port, stack.tunnel_host),
        }
        for direction in ("download", "upload"):  # warm-up: code paths, buffers, lazy imports
            for port, host in sides.values():
                run_client(direction, port, host, 1_000_000, cpus)
        watched = {r: p for r, p in stack.pids().items() if r in ("relay", "agent")}
        runs: dict[str, LoadResult] = {}
        details: dict[str, dict] = {}
        growth: dict[tuple[str, str], float] = {}
        notes: list[str] = []
        for direction in ("download", "upload"):
            for side, (port, host) in sides.items():
                idle = wait_settled(watched)
                sampler = RssSampler(watched).start()
                meter = CpuMeter(stack.pids())
                meter.start()
                out = run_client(direction, port, host, size, cpus)
                cpu = meter.stop()
                peaks = sampler.stop()
                name = f"{direction} {side}"
                runs[name] = LoadResult(
                    requests=1,
                    duration_s=out["seconds"],
                    bytes=size,
                    generator="transfer.py",
                    cpu=cpu,
                )
                out["rss_idle_kib"] = idle
                out["rss_peak_kib"] = peaks
                out["rss_samples"] = sampler.samples
                details[name] = out
                if not out["ok"]:
                    notes.append(
                        f"{name}: status {out['status']}, {out['bytes']:,} of {size:,} bytes"
                    )
                if side == "tunnel":
                    for role in watched:
                        growth[direction, role] = peaks.get(role, 0) - idle.get(role, 0)
        label = _size_label(size)
        metrics = []
        for direction in ("download", "upload"):
            d, t = details[f"{direction} direct"], details[f"{direction} tunnel"]
            metrics.append(
                Metric(
                    f"{label} {direction} (MB/s)",
                    "MB/s",
                    size / d["seconds"] / 1e6,
                    size / t["seconds"] / 1e6,
                    digits=1,
                    key=f"transfer.{direction}.mb_per_s",
                )
            )
        for direction in ("download", "upload"):
            for role in ("relay", "agent"):
                metrics.append(
                    Metric(
                        f"{label} {direction}: {role} peak RSS growth (MiB)",
                        "MiB",
                        None,
                        mib(growth[direction, role]),
                        "lower",
                        1,
                        False,
                        key=f"transfer.{direction}.{role}_rss_growth_mib",
                    )
                )
        for name, out in details.items():
            if name.endswith("tunnel"):
                idle, peak = out["rss_idle_kib"], out["rss_peak_kib"]
                notes.append(
                    f"{name}: RSS idle -> peak: "
                    + ", ".join(
                        f"{role} {mib(idle.get(role, 0)):.1f} -> {mib(peak.get(role, 0)):.1f} MiB"
                        for role in ("relay", "agent")
                    )
                )
        if ctx.quick:
            notes.append(f"--quick: {label} instead of 1 GB")
        return ScenarioResult(
            self.key, f"{label} transfer", metrics, runs, notes, how=self.how(ctx), details=details
        )


if __name__ == "__main__":
    sys.exit(main())
