"""The dashboard's cost: the same tunnel headless and inside the Textual dashboard, in a terminal.

Headless is the main stack's ``molehill http`` (its request log to a file). With the dashboard,
the tunnel runs in ``molehill --profiles PATH`` -- the Textual app, its agent on
``relay.host.TunnelHost``'s background thread -- in a real terminal: a tmux server of our own
(``tmux -L molehill-bench-PID -D``, a child of run.py, so it dies with it) holding a 160x45
session. The profiles file points the dashboard at the benchmark's relay::

    [relay]
    url = "ws://127.0.0.1:AGENTS"

    [profiles.bench]
    port = APP
    subdomain = "bench-ui"      # the headless agent holds "bench" on the same relay
    autostart = true

so the load goes relay -> the dashboard's agent -> app. The dashboard process goes on the tunnel
core like the headless agent (``python benchmarks/terminal.py exec --cpus 0 -- CMD`` pins and
execs); the tmux server, which plays the terminal emulator, goes on the load core.

Measured:

- keep-alive req/s through the tunnel (the configured generator, 32 connections), headless then
  with the dashboard, and their ratio;
- UI responsiveness under load: while benchmarks/loadgen.py sends ~2,000 req/s through the
  dashboard's tunnel (``--rate``: wrk cannot pace), press ``space`` (pause/follow the log: the
  log's title gains or loses ``· paused``) with ``tmux send-keys`` and poll
  ``tmux capture-pane -p`` until the change shows. Latency = first capture showing it - just
  before send-keys; it over-states by up to one poll plus the send-keys call (the resolution,
  measured and reported: ~2.5 ms each on the machine this was written on);
- the dashboard's RSS when idle and after all that traffic (its logs are ring buffers of 5,000
  rows, so it stays bounded) and its CPU at 2,000 req/s.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from pathlib import Path

from cpuwatch import CpuMeter, wait_quiet
from loadgen import BuiltinGenerator, LoadResult, LoadSpec
from memory import hwm_kib, mib, rss_kib
from scenarios import Context, Metric, Scenario, ScenarioResult
from stack import StackError, http_get
from terminal import HEIGHT, WIDTH, Terminal

HERE = Path(__file__).resolve().parent
PUBLIC_NAME = "bench-ui"
PAUSED = "· paused"  # the request log's title while paused (tui/widgets/request_log.py)
RATE = 2000
ROUNDS = 3  # headless / dashboard pairs; the median ratio is reported (1 with --quick)
# Before each measurement, wait (at most SETTLE_LIMIT s) until the agent and the dashboard,
# capture writer processes included, use less than QUIET of a core: after a run, a writer
# indexes the bodies it stored (inspector/capture_process.py) on the tunnel core, which would
# slow whichever side is measured next.
QUIET = 0.05
SETTLE_LIMIT = 30.0
SETTLE_WINDOW = 1.5  # longer than the writer's pause before it indexes (INDEX_AFTER_IDLE, 1 s)


def profiles_toml(agents_url: str, app_port: int) -> str:
    return (
        f'[relay]\nurl = "{agents_url}"\n\n[profiles.bench]\nport = {app_port}\n'
        f'subdomain = "{PUBLIC_NAME}"\nautostart = true\n'
    )


class Dashboard(Scenario):
    key = "dashboard"
    title = "dashboard cost"

    def presses(self, ctx: Context) -> int:
        return 10 if ctx.quick else 20

    def how(self, ctx: Context) -> str:
        return (
            f"keep-alive, 32 connections, {ctx.duration:g}s each, headless (molehill http) and "
            f"in the Textual dashboard in tmux {WIDTH}x{HEIGHT}, alternating, "
            f"{1 if ctx.quick else ROUNDS} round(s); then {self.presses(ctx)} "
            f"key presses at ~{RATE:,} req/s (loadgen.py --rate)"
        )

    def run(self, ctx: Context) -> ScenarioResult:
        stack = ctx.stack
        runs: dict[str, LoadResult] = {}
        notes: list[str] = []
        headless_spec = LoadSpec(
            port=stack.http_port,
            host_header=stack.tunnel_host,
            duration=ctx.duration,
            connections=32,
        )
        # Round 1's headless run comes before the dashboard starts; later ones have it idle
        # beside (its CPU then is in the notes): rounds alternate so that the machine's drift
        # hits both sides alike, and the median of the per-round ratios is what counts.
        runs["headless 1"] = ctx.measure_undisturbed(headless_spec)

        folder = ctx.logdir / "dashboard"
        folder.mkdir(parents=True, exist_ok=True)
        profiles_path = folder / "profiles.toml"
        profiles_path.write_text(profiles_toml(stack.agents_url, stack.app_port))
        cpus = ",".join(str(c) for c in sorted(ctx.pinning.tunnel or ()))
        command = [
            sys.executable,
            str(HERE / "terminal.py"),
            "exec",
            "--cpus",
            cpus,
            "--",
            *ctx.molehill,
            "--profiles",
            str(profiles_path),
        ]
        term = Terminal(folder, ctx.pinning.load)
        try:
            # A fresh capture store, as the headless agent has (stack.py): the user's own store
            # would be the dashboard's history (5,000 rows read at start), grow with every run
            # and have its writer index earlier runs' bodies while the headless side is measured.
            term.start(command, env={"MOLEHILL_CAPTURE_FILE": str(folder / "captures.sqlite3")})
            host = f"{PUBLIC_NAME}.localhost:{stack.http_port}"
            self._wait_online(term, stack.http_port, host, ctx.tunnel_timeout)
            extra = {"dashboard": term.pane_pid}
            if term.server is not None:
                extra["terminal"] = term.server.pid
            time.sleep(0.5)
            rss_idle = rss_kib(term.pane_pid) or 0
            pinned = (
                sorted(os.sched_getaffinity(term.pane_pid))
                if hasattr(os, "sched_getaffinity")
                else None
            )
            spec = LoadSpec(
                port=stack.http_port, host_header=host, duration=ctx.duration, connections=32
            )
            rounds = 1 if ctx.quick else ROUNDS
            busy = {"agent": stack.pids()["agent"], "dashboard": term.pane_pid}
            waits: list[float] = []
            for n in range(1, rounds + 1):
                if n > 1:
                    waits.append(wait_quiet(busy, QUIET, SETTLE_LIMIT, SETTLE_WINDOW))
                    runs[f"headless {n}"] = ctx.measure_undisturbed(headless_spec, extra)
                waits.append(wait_quiet(busy, QUIET, SETTLE_LIMIT, SETTLE_WINDOW))
                runs[f"dashboard {n}"] = ctx.measure_undisturbed(spec, extra)
            time.sleep(2 * 0.25)  # the last batches reach the UI
            rss_mid = rss_kib(term.pane_pid) or 0
            # The presses run at a steady 2,000 req/s: no indexing then, so none before either.
            waits.append(wait_quiet(busy, QUIET, SETTLE_LIMIT, SETTLE_WINDOW))
            presses, paced = self._presses(ctx, term, host, extra)
            runs[f"{RATE} req/s + keys"] = paced
            time.sleep(2 * 0.25)  # the last batches reach the UI
            rss_after = rss_kib(term.pane_pid) or 0
            hwm = hwm_kib(term.pane_pid) or 0
            profiles = self._profile(ctx, term.pane_pid, host) if ctx.profile_dir else []
            if term.pane_dead():
                raise StackError("the dashboard exited during the run:\n" + term.capture())
        finally:
            term.stop()
        pairs = sorted(
            (runs[f"dashboard {n}"].rps / (runs[f"headless {n}"].rps or 1), n)
            for n in range(1, rounds + 1)
        )
        ratio, middle = pairs[len(pairs) // 2]
        headless, dash = runs[f"headless {middle}"].rps, runs[f"dashboard {middle}"].rps
        notes.append(
            "dashboard / headless by round: "
            + ", ".join(f"{r:.2f}" for r, _ in sorted(pairs, key=lambda pair: pair[1]))
            + f"; the median round ({middle}) is reported"
        )
        for n in range(2, rounds + 1):
            cpu = runs[f"headless {n}"].cpu
            if cpu.get("wall"):
                notes.append(
                    f"headless {n}: the idle dashboard beside it used "
                    f"{cpu.get('dashboard', 0) / cpu['wall']:.1%} of a core"
                )
        notes.append(
            "waited for the capture writers' background work before each run: "
            + ", ".join(f"{w:.1f}" for w in waits)
            + " s"
        )
        latencies = sorted(p for p in presses if p is not None)
        missed = sum(1 for p in presses if p is None)
        if missed:
            notes.append(f"{missed} of {len(presses)} key presses showed no change within 2 s")
        polls = sorted(term.capture_s)
        resolution = polls[len(polls) // 2] * 1000 if polls else 0.0
        notes.append(
            f"key latency resolution: one capture-pane poll takes ~{resolution:.1f} ms "
            f"(median); each figure is from just before tmux send-keys"
        )
        for side, run in runs.items():
            if run.error_count:
                notes.append(f"{side}: {run.error_count} errors")
        dash_cpu = (
            paced.cpu.get("dashboard", 0) / paced.cpu["wall"] if paced.cpu.get("wall") else None
        )
        metrics = [
            Metric(
                "keep-alive, headless agent (req/s)",
                "req/s",
                None,
                headless,
                show_ratio=False,
                key="dashboard.headless_rps",
            ),
            Metric(
                "keep-alive, dashboard's agent (req/s)",
                "req/s",
                None,
                dash,
                show_ratio=False,
                key="dashboard.dashboard_rps",
            ),
            Metric(
                "dashboard / headless throughput",
                "ratio",
                None,
                ratio,
                digits=2,
                show_ratio=False,
                key="dashboard.ratio",
            ),
            Metric(
                f"key press to redraw at {paced.rps:,.0f} req/s, p50 (ms)",
                "ms",
                None,
                _pct(latencies, 50),
                "lower",
                1,
                False,
                key="dashboard.key_p50_ms",
            ),
            Metric(
                f"key press to redraw at {paced.rps:,.0f} req/s, p99 (ms)",
                "ms",
                None,
                _pct(latencies, 99) if not missed else 2000.0,
                "lower",
                1,
                False,
                key="dashboard.key_p99_ms",
            ),
            Metric(
                "dashboard CPU at that rate (% of a core)",
                "%",
                None,
                100 * dash_cpu if dash_cpu is not None else None,
                "lower",
                0,
                False,
                key="dashboard.cpu_pct",
            ),
            Metric(
                "dashboard RSS idle (MiB)",
                "MiB",
                None,
                mib(rss_idle),
                "lower",
                1,
                False,
                key="dashboard.rss_idle_mib",
            ),
            Metric(
                "dashboard RSS after the keep-alive run (MiB)",
                "MiB",
                None,
                mib(rss_mid),
                "lower",
                1,
                False,
                key="dashboard.rss_mid_mib",
            ),
            Metric(
                f"dashboard RSS after the {RATE:,} req/s run too (MiB)",
                "MiB",
                None,
                mib(rss_after),
                "lower",
                1,
                False,
                key="dashboard.rss_after_mib",
            ),
        ]
        details = {
            "presses_ms": [None if p is None else round(p, 2) for p in presses],
            "capture_ms_median": round(resolution, 2),
            "rss_idle_kib": rss_idle,
            "rss_mid_kib": rss_mid,
            "rss_after_kib": rss_after,
            "hwm_kib": hwm,
            "requests_keepalive": runs[f"dashboard {middle}"].requests,
            "ratios_by_round": [round(r, 3) for r, _ in sorted(pairs, key=lambda p: p[1])],
            "requests_paced": paced.requests,
            "dashboard_cpus": pinned,
            "paced_rps": round(paced.rps, 1),
            "paced_latency_ms": paced.latency_ms,
        }
        return ScenarioResult(
            self.key,
            self.title,
            metrics,
            runs,
            notes,
            how=self.how(ctx),
            details=details,
            profiles=profiles,
        )

    @staticmethod
    def _profile(ctx: Context, pid: int, host: str) -> list:
        """py-spy on the dashboard under keep-alive load through its tunnel, then under the
        paced ~2,000 req/s: all threads, only while they hold the GIL (so the shares say whose
        Python ran). Collapsed stacks go to DIR/dashboard.txt and DIR/dashboard-paced/."""
        from pyspy import Recorder, find_pyspy

        pyspy = find_pyspy()
        if pyspy is None or ctx.profile_dir is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy)")
        seconds = ctx.profile_seconds
        out = []
        for outdir, rate in ((ctx.profile_dir, 0.0), (ctx.profile_dir / "dashboard-paced", RATE)):
            recorder = Recorder(pyspy, outdir, threads=True, gil=True)
            recorder.start({"dashboard": pid}, seconds, ctx.pinning.load)
            time.sleep(0.3)
            spec = LoadSpec(
                port=ctx.stack.http_port,
                host_header=host,
                duration=seconds,
                connections=8 if rate else 32,
                rate=rate,
            )
            if rate:
                generator = BuiltinGenerator(ctx.pinning.load)
                meter = CpuMeter({**ctx.stack.pids(), "dashboard": pid})
                meter.start()
                load = generator.run(spec)
                load.cpu = meter.stop()
            else:
                load = ctx.measure(spec, {"dashboard": pid})
            profiles = recorder.finish()
            wall = load.cpu.get("wall") or 1
            what = f"paced at {rate:,.0f} req/s" if rate else "keep-alive, 32 connections"
            note = (
                f"{load.rps:,.0f} req/s ({what}) through the dashboard's tunnel; dashboard "
                f"CPU {load.cpu.get('dashboard', 0) / wall:.0%} of a core"
            )
            for profile in profiles:
                profile.run = {"note": note, "rps": round(load.rps, 1), "cpu": load.cpu}
            out += profiles
        return out

    @staticmethod
    def _wait_online(term: Terminal, port: int, host: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if term.pane_dead():
                raise StackError("the dashboard exited:\n" + term.capture())
            try:
                status, _ = http_get(port, host, "/", timeout=1.0)
                if status == 200:
                    return
                last = f"HTTP {status}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise StackError(
            f"the dashboard's tunnel never answered ({last}); its screen:\n" + term.capture()
        )

    def _presses(
        self, ctx: Context, term: Terminal, host: str, extra: dict[str, int]
    ) -> tuple[list[float | None], LoadResult]:
        """Key presses while ~RATE req/s go through the dashboard's tunnel."""
        count = self.presses(ctx)
        generator = BuiltinGenerator(ctx.pinning.load)
        spec = LoadSpec(
            port=ctx.stack.http_port, host_header=host, connections=8, duration=60.0, rate=RATE
        )
        proc = generator.start(spec)
        meter = CpuMeter({**ctx.stack.pids(), **extra})
        try:
            time.sleep(0.5 if ctx.quick else 1.0)  # the load settles; the UI's log fills up
            meter.start()
            rng = random.Random(6)  # pauses between presses: the same ones every run
            latencies: list[float | None] = []
            for _ in range(count):
                latencies.append(self._press(term))
                time.sleep(rng.uniform(0.05, 0.15) if ctx.quick else rng.uniform(0.1, 0.25))
            cpu = meter.stop()
        finally:
            result = generator.collect(proc, spec, early=True)
        result.cpu = cpu
        if PAUSED in term.capture():  # leave it following the log
            term.send_key("space")
        return latencies, result

    @staticmethod
    def _press(term: Terminal, limit: float = 2.0) -> float | None:
        """Press space; ms until the pause marker flips (None: not within ``limit`` s)."""
        paused = PAUSED in term.capture()
        started = time.perf_counter()
        term.send_key("space")
        while time.perf_counter() - started < limit:
            if (PAUSED in term.capture()) != paused:
                return (time.perf_counter() - started) * 1000
        return None


def _pct(ordered: list[float], p: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]
