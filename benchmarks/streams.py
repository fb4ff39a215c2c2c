"""1,000 concurrent long-polls and 1,000 concurrent SSE streams, direct vs through the tunnel.

Client (a subprocess pinned to the load core, uvloop; prints one JSON object)::

    python benchmarks/streams.py --port P --host-header H --kind poll --count 1000 --ms 5000
    python benchmarks/streams.py --port P --host-header H --kind sse --count 1000 \
        --events 5 --ms 1000

It opens ``count`` connections at once; each sends one request (``GET /poll?ms=N``: the app
answers N ms after the request arrived; ``GET /sse?n=K&ms=N``: one event every N ms, K in all,
then the end of the chunked response) and reads the response to its end. Per stream it records
the completion time minus the app's intended time (N ms, or K x N ms), counted from the moment
the request was written -- so it includes the connection set-up through the tunnel under a
burst of ``count`` new connections -- and, for SSE, each event's arrival minus its intended time.
It also counts how many streams were open at once (written, not yet complete).

The scenario (``Streams``) runs each kind on a fresh app + relay + agent (RSS seldom shrinks, so
memory figures need processes with no history): a short warm-up through the tunnel, the idle RSS
of relay and agent, then the direct run, then the tunnel run while memory.RssSampler polls the
relay's and the agent's VmRSS every 10 ms. Memory per stream = (peak RSS during the tunnel run -
idle RSS) / count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from cpuwatch import CpuMeter
from loadgen import LoadResult, latency_summary
from memory import RssSampler, mib, wait_settled
from scenarios import Context, Metric, Scenario, ScenarioResult
from stack import Stack, raise_fd_limit, run_json_client

HERE = Path(__file__).resolve().parent
EVENT = b"data: tick"
SSE_END = b"\r\n0\r\n\r\n"
PER_ADDRESS = 200


def source_address(index: int) -> str:
    """Clients spread over 127.0.0.2, 127.0.0.3, ... (all loopback on Linux), PER_ADDRESS
    each: the relay limits open connections per visitor address (``connections_per_ip``, 256 by
    default), and 1,000 real visitors would not share one address."""
    return f"127.0.0.{2 + index // PER_ADDRESS}"


class _Shared:
    def __init__(self, kind: str, ms: int, events: int) -> None:
        self.kind = kind
        self.interval = ms / 1000
        self.events = events
        self.intended = self.interval * (events if kind == "sse" else 1)
        self.open = 0
        self.max_open = 0
        self.extra: list[float] = []  # completion - intended, seconds
        self.event_delay: list[float] = []  # SSE: event arrival - intended, seconds
        self.event_spacing: list[float] = []  # SSE events 2..K: arrival - (first + k-1 intervals)
        self.events_received = 0
        self.completed = 0
        self.bad_status = 0
        self.errors: dict[str, int] = {}

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class _Stream(asyncio.Protocol):
    def __init__(self, shared: _Shared, request: bytes) -> None:
        self.shared = shared
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.events = 0
        self.sent = 0.0
        self.body_at = -1  # where the body starts in buf, once the head is in
        self.length = -1
        self.ok = False  # a 200 answer
        self.first_event = 0.0
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.sent = time.perf_counter()
        transport.write(self.request)  # type: ignore[attr-defined]
        s = self.shared
        s.open += 1
        s.max_open = max(s.max_open, s.open)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        s = self.shared
        self.buf += data
        if self.body_at < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.body_at = end + 4
            head = self.buf[:end].lower()
            self.ok = head[9:12] == b"200"
            if not self.ok:
                s.bad_status += 1
            pos = head.find(b"content-length:")
            if pos >= 0:
                self.length = int(head[pos + 15 :].split(b"\r\n", 1)[0])
        if s.kind == "sse" and self.ok:
            count = self.buf.count(EVENT, self.body_at)
            for k in range(self.events + 1, count + 1):
                s.event_delay.append(now - self.sent - k * s.interval)
                if k == 1:
                    self.first_event = now
                else:
                    s.event_spacing.append(now - self.first_event - (k - 1) * s.interval)
            s.events_received += count - self.events
            self.events = count
            if self.buf.endswith(SSE_END):
                self._complete(now)
        elif self.length >= 0 and len(self.buf) - self.body_at >= self.length:
            self._complete(now)

    def _complete(self, now: float) -> None:
        s = self.shared
        if self.ok:
            s.completed += 1
            s.extra.append(now - self.sent - s.intended)
        s.open -= 1
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_result(True)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.shared.open -= 1
            self.shared.error("closed early")
            self.done.set_result(False)


async def _one(shared: _Shared, port: int, request: bytes, deadline: float, source: str) -> None:
    loop = asyncio.get_running_loop()
    stream = _Stream(shared, request)
    try:
        await loop.create_connection(lambda: stream, "127.0.0.1", port, local_addr=(source, 0))
    except OSError as exc:
        shared.error(f"connect: {exc.strerror or exc}")
        return
    try:
        await asyncio.wait_for(stream.done, max(0.1, deadline - time.monotonic()))
    except TimeoutError:
        shared.error("timeout")
        if stream.transport is not None:
            stream.transport.abort()


async def hold(port: int, host_header: str, kind: str, count: int, ms: int, events: int) -> dict:
    shared = _Shared(kind, ms, events)
    path = f"/poll?ms={ms}" if kind == "poll" else f"/sse?n={events}&ms={ms}"
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: molehill-bench\r\n"
        f"Accept: {'text/event-stream' if kind == 'sse' else '*/*'}\r\n\r\n"
    ).encode()
    deadline = time.monotonic() + shared.intended + 30
    started = time.perf_counter()
    await asyncio.gather(
        *(_one(shared, port, request, deadline, source_address(i)) for i in range(count))
    )
    elapsed = time.perf_counter() - started
    ms_summary = latency_summary(shared.extra)  # seconds in, ms out
    return {
        "kind": kind,
        "count": count,
        "intended_ms": shared.intended * 1000,
        "completed": shared.completed,
        "bad_status": shared.bad_status,
        "events_expected": count * events if kind == "sse" else 0,
        "events_received": shared.events_received,
        "max_open": shared.max_open,
        "extra_ms": ms_summary,
        "event_delay_ms": latency_summary(shared.event_delay),
        "event_spacing_ms": latency_summary(shared.event_spacing),
        "errors": shared.errors,
        "elapsed_s": elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Hold N long-polls or SSE streams open.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host-header", required=True)
    parser.add_argument("--kind", choices=("poll", "sse"), required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--ms", type=int, default=1000, help="poll: the wait; sse: the interval")
    parser.add_argument("--events", type=int, default=5, help="sse: events per stream")
    args = parser.parse_args(argv)
    raise_fd_limit()
    import uvloop

    out = uvloop.run(hold(args.port, args.host_header, args.kind, args.count, args.ms, args.events))
    print(json.dumps(out))
    return 0


# -- the scenario ----------------------------------------------------------------------------------


def run_client(
    stack_port: int,
    host_header: str,
    kind: str,
    count: int,
    ms: int,
    events: int,
    cpus: set[int] | None,
) -> dict:
    cmd = [
        sys.executable,
        str(HERE / "streams.py"),
        "--port",
        str(stack_port),
        "--host-header",
        host_header,
        "--kind",
        kind,
        "--count",
        str(count),
        "--ms",
        str(ms),
        "--events",
        str(events),
    ]
    return run_json_client(cmd, cpus, ms / 1000 * max(events, 1) + 60, "streams client")


class Streams(Scenario):
    key = "streams"
    title = "1,000 concurrent long-polls and SSE streams"

    def plan(self, ctx: Context) -> dict[str, int]:
        if ctx.quick:
            return {"count": 200, "poll_ms": 1000, "events": 2, "interval_ms": 500}
        return {"count": 1000, "poll_ms": 5000, "events": 5, "interval_ms": 1000}

    def how(self, ctx: Context) -> str:
        p = self.plan(ctx)
        scaled = " (--quick: scaled down from 1,000 streams, 5 s, 1 event/s)" if ctx.quick else ""
        return (
            f"{p['count']:,} long-polls (app answers after {p['poll_ms'] / 1000:g} s), then "
            f"{p['count']:,} SSE streams ({p['events']} events, 1 per "
            f"{p['interval_ms'] / 1000:g} s), all opened at once, direct then through a "
            f"fresh relay + agent per kind{scaled}"
        )

    def run(self, ctx: Context) -> ScenarioResult:
        p = self.plan(ctx)
        count = p["count"]
        details: dict[str, dict] = {}
        runs: dict[str, LoadResult] = {}
        notes: list[str] = []
        for kind in ("poll", "sse"):
            ms = p["poll_ms"] if kind == "poll" else p["interval_ms"]
            events = p["events"] if kind == "sse" else 0
            stack = ctx.fresh_stack(f"streams-{kind}")
            try:
                stack.start(timeout=ctx.tunnel_timeout)
                details[kind] = self._measure(ctx, stack, kind, count, ms, events)
            finally:
                stack.stop()
            for side in ("direct", "tunnel"):
                out = details[kind][side]
                runs[f"{kind} {side}"] = LoadResult(
                    requests=out["completed"],
                    duration_s=out["elapsed_s"],
                    errors=out["errors"],
                    non_2xx=out["bad_status"],
                    latency_ms=out["extra_ms"],
                    generator="streams.py",
                    cpu=out["cpu"],
                )
                problems = self._problems(out)
                if problems:
                    notes.append(f"{kind} {side}: {problems}")
            tunnel = details[kind]["tunnel"]
            idle, peak = tunnel["rss_idle_kib"], tunnel["rss_peak_kib"]
            notes.append(
                f"{kind}: RSS idle -> with {count:,} open: "
                + ", ".join(
                    f"{role} {mib(idle.get(role, 0)):.1f} -> {mib(peak.get(role, 0)):.1f} MiB"
                    for role in ("relay", "agent")
                )
            )
        return ScenarioResult(
            self.key,
            self._title(count),
            self._metrics(details, count),
            runs,
            notes + (["--quick: scaled down"] if ctx.quick else []),
            how=self.how(ctx),
            details=details,
        )

    def _title(self, count: int) -> str:
        return f"{count:,} concurrent long-polls and SSE streams"

    def _measure(
        self, ctx: Context, stack: Stack, kind: str, count: int, ms: int, events: int
    ) -> dict:
        cpus = ctx.pinning.load
        # Warm-up through the tunnel: lazy imports and first-use allocations are not per stream.
        run_client(stack.http_port, stack.tunnel_host, kind, 20, 100, 1, cpus)
        watched = {r: pid for r, pid in stack.pids().items() if r in ("relay", "agent")}
        out: dict[str, dict] = {}
        for side, port, host in (
            ("direct", stack.app_port, stack.direct_host),
            ("tunnel", stack.http_port, stack.tunnel_host),
        ):
            idle = wait_settled(watched)
            sampler = RssSampler(watched).start()
            meter = CpuMeter(stack.pids())
            meter.start()
            result = run_client(port, host, kind, count, ms, events, cpus)
            result["cpu"] = meter.stop()
            peaks = sampler.stop()
            result["rss_idle_kib"], result["rss_peak_kib"] = idle, peaks
            result["rss_per_stream_kib"] = {
                role: (peaks.get(role, 0) - idle.get(role, 0)) / count for role in watched
            }
            out[side] = result
        return out

    @staticmethod
    def _problems(out: dict) -> str:
        parts = []
        if out["completed"] < out["count"]:
            parts.append(f"{out['count'] - out['completed']} of {out['count']} not completed")
        if out["events_received"] < out["events_expected"]:
            parts.append(f"{out['events_received']} of {out['events_expected']} events")
        if out["bad_status"]:
            parts.append(f"{out['bad_status']} non-200")
        if out["errors"]:
            parts.append(", ".join(f"{n} {k}" for k, n in out["errors"].items()))
        if out["max_open"] < out["count"]:
            parts.append(f"at most {out['max_open']} open at once")
        return "; ".join(parts)

    def _metrics(self, details: dict[str, dict], count: int) -> list[Metric]:
        rows: list[Metric] = []
        n = f"{count:,}"
        for kind, what in (("poll", "long-polls"), ("sse", "SSE streams")):
            d, t = details[kind]["direct"], details[kind]["tunnel"]
            done = "completed" if kind == "poll" else "completed, all events"

            def ok_share(out: dict, kind: str = kind) -> float:
                if kind == "sse":
                    complete = min(out["completed"], out["count"])
                    events = out["events_received"] / max(1, out["events_expected"])
                    return 100 * min(complete / out["count"], events)
                return 100 * out["completed"] / out["count"]

            rows.append(
                Metric(
                    f"{n} {what}: {done} (%)",
                    "%",
                    ok_share(d),
                    ok_share(t),
                    digits=1,
                    key=f"streams.{kind}.complete_pct",
                )
            )
            for stat in ("p50", "p99"):
                rows.append(
                    Metric(
                        f"{n} {what}: completion after intended, {stat} (ms)",
                        "ms",
                        d["extra_ms"].get(stat),
                        t["extra_ms"].get(stat),
                        "lower",
                        1,
                        key=f"streams.{kind}.extra_{stat}_ms",
                    )
                )
            if kind == "sse":
                rows.append(
                    Metric(
                        f"{n} SSE streams: events 2.., late vs the first, p99 (ms)",
                        "ms",
                        d["event_spacing_ms"].get("p99"),
                        t["event_spacing_ms"].get("p99"),
                        "lower",
                        1,
                        key="streams.sse.event_spacing_p99_ms",
                    )
                )
            for role in ("relay", "agent"):
                rows.append(
                    Metric(
                        f"{n} {what}: {role} RSS per open stream (KiB)",
                        "KiB",
                        None,
                        t["rss_per_stream_kib"][role],
                        "lower",
                        1,
                        False,
                        key=f"streams.{kind}.{role}_kib_per_stream",
                    )
                )
        return rows


if __name__ == "__main__":
    sys.exit(main())
