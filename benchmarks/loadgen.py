"""The built-in HTTP/1.1 load generator: asyncio protocols on uvloop, one process, one core.

Used when ``wrk`` is not installed. Each of ``connections`` clients sends one GET, reads the
response with a tiny parser (status line, ``Content-Length``, ``Connection: close``; no chunked
bodies, no pipelining) and sends the next one at once; with ``close=True`` every request opens a
new connection and sends ``Connection: close``. Latency is measured per request from the write
(or the connect, for new connections) to the last byte of the body, uncorrected for coordinated
omission (like wrk, unlike wrk2).

With ``--rate R`` (requests per second, all connections together) the load is paced instead:
each connection sends its next request at its own slot (every ``connections / R`` seconds,
the connections' slots spread evenly), or at once when it is behind schedule; wrk cannot do
that, so run.py uses this generator for rate-limited load (the dashboard's responsiveness).

Run it as a subprocess so it can be pinned to its own core::

    python benchmarks/loadgen.py --port 8080 --host-header app.localhost:8080 \
        --path / --connections 32 --duration 5 [--close] [--rate 2000]

It prints one JSON object (``LoadResult.to_json``). ``BuiltinGenerator`` does that for run.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass
class LoadSpec:
    """What to send: one GET, repeated, on ``connections`` clients for ``duration`` seconds."""

    port: int
    host_header: str
    path: str = "/"
    connections: int = 32
    duration: float = 5.0
    close: bool = False  # a new connection per request, with "Connection: close"
    host: str = "127.0.0.1"
    rate: float = 0.0  # requests per second, all connections together; 0: as fast as possible

    def request(self) -> bytes:
        close = "Connection: close\r\n" if self.close else ""
        return (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host_header}\r\n"
            f"User-Agent: molehill-bench\r\nAccept: */*\r\n{close}\r\n"
        ).encode("latin-1")


@dataclass
class LoadResult:
    """What a generator measured. Latencies in milliseconds; ``bytes`` counts heads too."""

    requests: int = 0  # responses completed within the duration (any status)
    duration_s: float = 0.0
    bytes: int = 0
    non_2xx: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # connect, read, timeout, ...
    latency_ms: dict[str, float] = field(default_factory=dict)  # mean, p50, p90, p99, max
    generator: str = ""
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by role (cpuwatch.py)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def mb_per_s(self) -> float:
        """Response bytes per second in MB (10**6 bytes)."""
        return self.bytes / self.duration_s / 1e6 if self.duration_s else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values()) + self.non_2xx

    def to_json(self) -> dict:
        data = asdict(self)
        data["rps"] = round(self.rps, 1)
        data["mb_per_s"] = round(self.mb_per_s, 2)
        return data

    @classmethod
    def from_json(cls, data: dict) -> LoadResult:
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})


def latency_summary(samples_s: list[float]) -> dict[str, float]:
    """mean/p50/p90/p99/max in ms from samples in seconds (nearest-rank percentiles)."""
    if not samples_s:
        return {}
    ordered = sorted(samples_s)
    n = len(ordered)

    def pct(p: float) -> float:
        return ordered[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))] * 1000

    return {
        "mean": sum(ordered) / n * 1000,
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "max": ordered[-1] * 1000,
    }


# -- the engine ------------------------------------------------------------------------------------


class _Run:
    """Shared counters of one run."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.request = spec.request()
        self.deadline = math.inf
        self.stopping = False
        self.requests = 0
        self.bytes = 0
        self.non_2xx = 0
        self.errors: dict[str, int] = {}
        self.latencies: list[float] = []
        # Pacing: each connection sends once per ``interval`` seconds (0: unpaced).
        self.interval = spec.connections / spec.rate if spec.rate > 0 else 0.0
        self.first_slot = 0.0  # when the first connection's first request is due
        self.clients_started = 0
        self.waiting: set[_Client] = set()  # paced clients between requests

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class _Client(asyncio.Protocol):
    """One connection: send, parse the response, repeat (keep-alive) or close."""

    def __init__(self, run: _Run, started: float, due: float = 0.0) -> None:
        self.run = run
        self.due = due  # paced runs: when the next request is due (perf_counter)
        self.timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.started = started  # when the current request began
        self.head = b""  # a response head being collected
        self.remaining = -1  # body bytes still to come; -1 while reading the head
        self.size = 0
        self.status_ok = True
        self.server_closes = False
        self.complete = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.run.interval:
            self._send_when_due()
        else:
            transport.write(self.run.request)  # type: ignore[attr-defined]

    def _send_when_due(self) -> None:
        wait = self.due - time.perf_counter()
        if wait > 0:
            self.timer = asyncio.get_running_loop().call_later(wait, self._send)
            self.run.waiting.add(self)
        else:
            self._send()

    def _send(self) -> None:
        self.timer = None
        self.run.waiting.discard(self)
        transport = self.transport
        if transport is None or transport.is_closing() or self.run.stopping:
            return
        now = time.perf_counter()
        self.started = now
        interval = self.run.interval
        # Behind by more than a second: the target rate is out of reach; don't burst to catch up.
        self.due = max(self.due, now - 1.0) + interval
        transport.write(self.run.request)

    def data_received(self, data: bytes) -> None:
        self.size += len(data)
        if self.remaining < 0:
            buf = self.head + data if self.head else data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.head = buf
                return
            head = buf[:end].lower()
            self.head = b""
            self.status_ok = head[9:10] == b"2"
            pos = head.find(b"\r\ncontent-length:")
            if pos < 0:
                self.run.error("no_content_length")
                self._abort()
                return
            stop = head.find(b"\r\n", pos + 17)
            length = int(head[pos + 17 : stop if stop >= 0 else len(head)])
            self.server_closes = b"\r\nconnection: close" in head
            self.remaining = length - (len(buf) - end - 4)
        else:
            self.remaining -= len(data)
        if self.remaining <= 0:
            self._response_done()

    def _response_done(self) -> None:
        run = self.run
        now = time.perf_counter()
        if now <= run.deadline:
            run.requests += 1
            run.bytes += self.size
            run.latencies.append(now - self.started)
            if not self.status_ok:
                run.non_2xx += 1
        self.size = 0
        self.remaining = -1
        transport = self.transport
        assert transport is not None
        if run.spec.close or self.server_closes or run.stopping or now > run.deadline:
            self.complete = True
            transport.close()
            return
        if run.interval:
            self._send_when_due()
            return
        self.started = now
        transport.write(run.request)

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.run.waiting.discard(self)
        if not self.complete and not self.run.stopping:
            self.run.error("read")
        if not self.closed.done():
            self.closed.set_result(None)


def _returning(client: _Client) -> Callable[[], _Client]:
    return lambda: client


async def _client_loop(run: _Run) -> None:
    loop = asyncio.get_running_loop()
    spec = run.spec
    slot = run.clients_started
    run.clients_started += 1
    due = run.first_slot + slot * run.interval / max(1, spec.connections)
    while not run.stopping:
        client = _Client(run, time.perf_counter(), due)
        try:
            await loop.create_connection(_returning(client), spec.host, spec.port)
        except OSError:
            run.error("connect")
            await asyncio.sleep(0.01)
            continue
        await client.closed
        due = max(client.due, time.perf_counter())


async def generate(spec: LoadSpec) -> LoadResult:
    """Run the load described by ``spec`` in this process and return what it measured."""
    run = _Run(spec)
    start = time.perf_counter()
    run.deadline = start + spec.duration
    run.first_slot = start
    tasks = [asyncio.create_task(_client_loop(run)) for _ in range(spec.connections)]
    stop = asyncio.Event()  # SIGTERM ends the run early; what was measured so far is reported
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), spec.duration)
    elapsed = min(spec.duration, time.perf_counter() - start)
    run.deadline = min(run.deadline, start + elapsed)
    run.stopping = True
    for client in list(run.waiting):  # paced clients idle until their next slot: done
        if client.timer is not None:
            client.timer.cancel()
        client.complete = True
        if client.transport is not None:
            client.transport.close()
    # Give in-flight requests a moment, then cut what is left (it no longer counts).
    _, pending = await asyncio.wait(tasks, timeout=2.0)
    for task in pending:
        task.cancel()
    return LoadResult(
        requests=run.requests,
        duration_s=elapsed,  # only responses completed by the deadline count
        bytes=run.bytes,
        non_2xx=run.non_2xx,
        errors=run.errors,
        latency_ms=latency_summary(run.latencies),
        generator="builtin",
    )


# -- running it as a pinned subprocess -------------------------------------------------------------


class BuiltinGenerator:
    """Runs ``python benchmarks/loadgen.py`` pinned to ``cpus`` and reads its JSON result."""

    name = "builtin"

    def __init__(self, cpus: set[int] | None = None, python: str = sys.executable) -> None:
        self.cpus = cpus
        self.python = python

    def describe(self) -> str:
        return "built-in asyncio+uvloop generator (benchmarks/loadgen.py, 1 process)"

    def run(self, spec: LoadSpec) -> LoadResult:
        return self.collect(self.start(spec), spec)

    def start(self, spec: LoadSpec) -> subprocess.Popen:
        """Start a run in the background; ``collect`` waits for it and reads its result."""
        from stack import _register, pinned_preexec

        cmd = [
            self.python,
            str(HERE / "loadgen.py"),
            "--host",
            spec.host,
            "--port",
            str(spec.port),
            "--host-header",
            spec.host_header,
            "--path",
            spec.path,
            "--connections",
            str(spec.connections),
            "--duration",
            str(spec.duration),
        ]
        if spec.close:
            cmd.append("--close")
        if spec.rate:
            cmd += ["--rate", str(spec.rate)]
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=pinned_preexec(self.cpus),
        )
        _register(proc)
        return proc

    def collect(self, proc: subprocess.Popen, spec: LoadSpec, early: bool = False) -> LoadResult:
        """Wait for a run started with ``start`` (``early``: end it now, with SIGTERM)."""
        from stack import track

        if early and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        with track(proc):
            out, err = proc.communicate(timeout=spec.duration + 30)
        if proc.returncode != 0:
            raise RuntimeError(f"load generator failed ({proc.returncode}): {err.strip()[-2000:]}")
        return LoadResult.from_json(json.loads(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Built-in HTTP/1.1 load generator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host-header", default=None)
    parser.add_argument("--path", default="/")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--close", action="store_true", help="a new connection per request")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        metavar="R",
        help="pace the load at R requests/s in all (default: unpaced)",
    )
    args = parser.parse_args(argv)
    spec = LoadSpec(
        port=args.port,
        host_header=args.host_header or f"{args.host}:{args.port}",
        path=args.path,
        connections=args.connections,
        duration=args.duration,
        close=args.close,
        host=args.host,
        rate=args.rate,
    )
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(generate(spec))
    else:
        result = uvloop.run(generate(spec))
    print(json.dumps(result.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
