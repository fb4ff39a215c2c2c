"""WebSocket echo round trips, one at a time on one connection: directly vs through the tunnel.

Client (run as a subprocess, pinned to the load core; driven by lines on stdin)::

    python benchmarks/wsecho.py --port P --host-header H [--size 32] [--watch relay=PID,...]

It opens one WebSocket to ``ws://H/ws`` over a TCP connection to 127.0.0.1:P (the URI's host
is the Host header: the app's address directly, ``bench.localhost:RELAY_PORT`` through the
tunnel), with the ``websockets`` asyncio client on uvloop (no compression, no keep-alive pings,
no proxy), and prints ``{"ready": ...}``. Then for each line ``round COUNT WARMUP`` it sends
WARMUP messages of SIZE bytes one at a time, each after the previous one's echo, unrecorded; then
COUNT more, timing each from just before ``send`` to the return of ``recv`` (checking the
echo), and prints one JSON line: the round trip times' summary and, for each ``--watch``ed
process, the CPU it used during the timed part (nanoseconds from /proc/PID/task/*/schedstat; the
clock-tick counters of /proc/PID/stat where that is missing). At the end of stdin it closes the
WebSocket and exits.

The scenario (``WsEcho``) starts one client per side against the main stack and alternates
rounds (direct, tunnel, direct, tunnel, ...): 5 rounds of 1,000 round trips each (3 of 300 with
``--quick``), 100 warm-up round trips before each. Reported per side: the median over the rounds
of the mean, p50 and p99 round trip time; the tunnel/direct ratio of those median means (the
target: <= 1.5); the relay's and the agent's CPU per round trip, over all tunnel rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cpuwatch import CpuMeter, proc_cpu_seconds
from loadgen import LoadResult, latency_summary
from scenarios import BUSY_NEIGHBOUR, Context, Metric, Scenario, ScenarioResult
from stack import StackError, _register, _stop, pinned_preexec

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

HERE = Path(__file__).resolve().parent
SIDES = ("direct", "tunnel")


def cpu_ns(pid: int) -> int | None:
    """CPU time of all threads of ``pid`` in ns (schedstat), or from clock ticks; None: gone."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tids = []
    total, found = 0, False
    for tid in tids:
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            found = True
        except (OSError, ValueError, IndexError):
            continue
    if found:
        return total
    seconds = proc_cpu_seconds(pid)
    return None if seconds is None else int(seconds * 1e9)


# -- the client ------------------------------------------------------------------------------------


async def echo_round(
    ws: ClientConnection, count: int, warmup: int, size: int, watch: dict[str, int]
) -> dict:
    """WARMUP unrecorded round trips, then COUNT timed ones; the summary as a dict."""
    send, recv, clock = ws.send, ws.recv, time.perf_counter
    pad = bytes(size - 4)
    for i in range(warmup):
        await send(i.to_bytes(4, "big") + pad)
        await recv()
    samples: list[float] = []
    mismatched = 0
    cpu_before = {role: cpu_ns(pid) for role, pid in watch.items()}
    own_before, started = time.process_time(), clock()
    for i in range(count):
        message = i.to_bytes(4, "big") + pad
        t0 = clock()
        await send(message)
        echo = await recv()
        samples.append(clock() - t0)
        if echo != message:
            mismatched += 1
    seconds, own = clock() - started, time.process_time() - own_before
    cpu = {}
    for role, pid in watch.items():
        after, before = cpu_ns(pid), cpu_before[role]
        if after is not None and before is not None:
            cpu[role] = after - before
    latency = latency_summary(samples)
    latency["min"] = min(samples) * 1000 if samples else 0.0
    return {
        "count": count,
        "warmup": warmup,
        "size": size,
        "seconds": seconds,
        "latency_ms": latency,
        "mismatched": mismatched,
        "cpu_ns": cpu,
        "client_cpu_s": own,
    }


async def client(port: int, host_header: str, size: int, watch: dict[str, int]) -> int:
    from websockets.asyncio.client import connect

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    started = time.perf_counter()
    async with connect(
        f"ws://{host_header}/ws",
        host="127.0.0.1",  # the TCP connection; the URI's host is only the Host header
        port=port,
        compression=None,
        proxy=None,
        ping_interval=None,
        open_timeout=20,
    ) as ws:
        connect_ms = (time.perf_counter() - started) * 1000
        sock = ws.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        print(json.dumps({"ready": True, "connect_ms": connect_ms}), flush=True)
        while line := await stdin.readline():
            word, *numbers = line.split()
            if word != b"round":
                continue
            count, warmup = (int(n) for n in numbers)
            print(json.dumps(await echo_round(ws, count, warmup, size, watch)), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="WebSocket echo round trips, one at a time.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host-header", required=True)
    parser.add_argument("--size", type=int, default=32, help="message size in bytes (>= 4)")
    parser.add_argument("--watch", default="", help="role=PID,...: CPU to report per round")
    args = parser.parse_args(argv)
    watch = {r: int(p) for r, _, p in (w.partition("=") for w in args.watch.split(",") if w)}
    import uvloop

    return uvloop.run(client(args.port, args.host_header, max(4, args.size), watch))


# -- the scenario ----------------------------------------------------------------------------------


class _Client:
    """One pinned client process (one side, one WebSocket), answering ``round`` lines."""

    def __init__(self, ctx: Context, side: str, size: int) -> None:
        stack = ctx.stack
        port, host = (
            (stack.app_port, stack.direct_host)
            if side == "direct"
            else (stack.http_port, stack.tunnel_host)
        )
        watch = ",".join(f"{role}={pid}" for role, pid in stack.pids().items())
        cmd = [sys.executable, str(HERE / "wsecho.py"), "--port", str(port)]
        cmd += ["--host-header", host, "--size", str(size), "--watch", watch]
        self.side, self.log = side, ctx.logdir / f"wsecho-{side}.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                preexec_fn=pinned_preexec(ctx.pinning.load),
            )
        _register(self.proc)

    def line(self, timeout: float) -> dict:
        import selectors

        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                raise StackError(f"the {self.side} WebSocket client did not answer in {timeout}s")
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            tail = self.log.read_text(errors="replace").strip()[-1500:]
            raise StackError(f"the {self.side} WebSocket client exited ({code}):\n{tail}")
        return json.loads(line)

    def round(self, count: int, warmup: int) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"round {count} {warmup}\n")
        self.proc.stdin.flush()
        return self.line(60.0)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        _stop([self.proc], grace=3.0)


class WsEcho(Scenario):
    key = "wsecho"
    title = "WebSocket echo, 1 connection"
    size = 32
    warmup = 100

    def plan(self, ctx: Context) -> tuple[int, int]:
        """(rounds per side, round trips per round)."""
        return (3, 300) if ctx.quick else (5, 1000)

    def how(self, ctx: Context) -> str:
        rounds, count = self.plan(ctx)
        scaled = " (--quick: scaled down from 5 x 1,000)" if ctx.quick else ""
        return (
            f"{count:,} sequential {self.size}-byte echo round trips on one WebSocket (GET /ws), "
            f"{rounds} rounds per side, direct and tunnel alternating, {self.warmup} warm-up "
            f"round trips before each; medians over the rounds{scaled}"
        )

    def run(self, ctx: Context) -> ScenarioResult:
        rounds, count = self.plan(ctx)
        clients: dict[str, _Client] = {}
        per: dict[str, list[dict]] = {side: [] for side in SIDES}
        connect_ms: dict[str, float] = {}
        try:
            for side in SIDES:
                clients[side] = _Client(ctx, side, self.size)
            for side in SIDES:
                connect_ms[side] = clients[side].line(ctx.tunnel_timeout)["connect_ms"]
            for _ in range(rounds):
                for side in SIDES:
                    meter = CpuMeter({**ctx.stack.pids(), "load": clients[side].proc.pid})
                    meter.start()
                    out = clients[side].round(count, self.warmup)
                    out["cpu"] = meter.stop()
                    per[side].append(out)
        finally:
            for c in clients.values():
                c.close()
        return self._result(ctx, per, connect_ms, rounds, count)

    def _result(
        self,
        ctx: Context,
        per: dict[str, list[dict]],
        connect_ms: dict[str, float],
        rounds: int,
        count: int,
    ) -> ScenarioResult:
        med = {
            side: {
                stat: statistics.median(r["latency_ms"][stat] for r in per[side])
                for stat in ("mean", "p50", "p90", "p99", "max", "min")
            }
            for side in SIDES
        }
        d, t = med["direct"], med["tunnel"]
        ratio = t["mean"] / d["mean"] if d["mean"] else None
        total = count * rounds
        cpu_us = {  # CPU per timed round trip, over all rounds of a side
            side: {
                role: sum(r["cpu_ns"].get(role, 0) for r in per[side]) / total / 1000
                for role in ("app", "relay", "agent")
            }
            for side in SIDES
        }
        tunnel_cpu = cpu_us["tunnel"]["relay"] + cpu_us["tunnel"]["agent"]
        metrics = [
            Metric(
                f"WebSocket echo {stat} (ms)",
                "ms",
                d[stat],
                t[stat],
                "lower",
                3,
                key=f"wsecho.{stat}_ms",
            )
            for stat in ("mean", "p50", "p99")
        ]
        metrics.append(
            Metric(
                "WebSocket echo mean, tunnel/direct",
                "",
                None,
                ratio,
                "lower",
                2,
                False,
                key="wsecho.ratio",
            )
        )
        metrics.append(
            Metric(
                "WebSocket echo: relay + agent CPU per round trip (us)",
                "us",
                None,
                tunnel_cpu,
                "lower",
                1,
                False,
                key="wsecho.tunnel_cpu_us",
            )
        )
        runs = {side: self._load_result(per[side]) for side in SIDES}
        round_ratios = [
            tr["latency_ms"]["mean"] / dr["latency_ms"]["mean"]
            for dr, tr in zip(per["direct"], per["tunnel"], strict=True)
        ]
        notes = [
            f"{rounds} rounds of {count:,} per side, medians reported; round means (ms) direct "
            + ", ".join(f"{r['latency_ms']['mean']:.3f}" for r in per["direct"])
            + "; tunnel "
            + ", ".join(f"{r['latency_ms']['mean']:.3f}" for r in per["tunnel"])
            + "; per-round ratios "
            + ", ".join(f"{x:.2f}" for x in round_ratios),
            f"added latency (tunnel - direct, median means): {t['mean'] - d['mean']:.3f} ms; "
            f"CPU per round trip (us): relay {cpu_us['tunnel']['relay']:.1f}, agent "
            f"{cpu_us['tunnel']['agent']:.1f}, app {cpu_us['tunnel']['app']:.1f} "
            f"(direct: app {cpu_us['direct']['app']:.1f})",
        ]
        for side in SIDES:
            bad = sum(r["mismatched"] for r in per[side])
            if bad:
                notes.append(f"{side}: {bad} echoes differed from the message sent")
            busy = [r for r in per[side] if _others(r["cpu"]) > BUSY_NEIGHBOUR]
            if busy:
                worst = max(_others(r["cpu"]) for r in busy)
                notes.append(
                    f"{side}: other processes used over {BUSY_NEIGHBOUR:.0%} of a core in "
                    f"{len(busy)} of {rounds} rounds (up to {worst:.0%}); the median damps that"
                )
        if ratio is not None and ratio < 1:
            notes.append("the tunnel measured faster than the direct path: a disturbed run")
        if ctx.quick:
            notes.append(f"--quick: {rounds} rounds of {count} instead of 5 of 1,000")
        details = {
            "rounds": rounds,
            "count": count,
            "warmup": self.warmup,
            "size": self.size,
            "connect_ms": connect_ms,
            "median_latency_ms": med,
            "round_ratios": round_ratios,
            "cpu_us_per_round_trip": cpu_us,
            "per_round": per,
        }
        return ScenarioResult(
            self.key, self.title, metrics, runs, notes, how=self.how(ctx), details=details
        )

    @staticmethod
    def _load_result(rounds: list[dict]) -> LoadResult:
        """All rounds of a side as one LoadResult (medians; CPU summed, for the CPU table)."""
        cpu: dict[str, float] = {}
        for r in rounds:
            for role, value in r["cpu"].items():
                cpu[role] = round(cpu.get(role, 0.0) + value, 3)
        latency = {
            stat: statistics.median(r["latency_ms"][stat] for r in rounds)
            for stat in rounds[0]["latency_ms"]
        }
        return LoadResult(
            requests=sum(r["count"] for r in rounds),
            duration_s=sum(r["seconds"] for r in rounds),
            bytes=sum(r["count"] * r["size"] for r in rounds),
            latency_ms=latency,
            generator="wsecho.py (websockets asyncio client, uvloop)",
            cpu=cpu,
        )


def _others(cpu: dict[str, float]) -> float:
    return cpu.get("others", 0.0) / cpu["wall"] if cpu.get("wall") else 0.0


if __name__ == "__main__":
    sys.exit(main())
