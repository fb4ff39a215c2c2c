"""molehill benchmarks: the local app directly vs through relay + agent, in one run.

    python benchmarks/run.py [--quick] [--json PATH] [--duration S]

Starts the local app (benchmarks/localapp.py), ``molehill relay`` and ``molehill http`` as
subprocesses on 127.0.0.1, pins them to one core and the load generator (wrk if installed, else
benchmarks/loadgen.py) to another, runs every scenario against the app directly and through the
tunnel, prints a table with tunnel/direct ratios and writes the results as JSON (default
benchmarks/results/latest.json). Every process started is stopped at the end, whatever happens.
Exit codes: 0 done; 1 the stack or a load run failed; 3 a target was missed (only with --check);
130 interrupted. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine
import report
import stack
from loadgen import BuiltinGenerator
from scenarios import Context, Generator, ScenarioResult
from suite import SCENARIOS, TARGETS
from wrk import WrkGenerator, find_wrk

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "latest.json"
QUICK_JSON = HERE / "results" / "quick.json"  # git-ignored: smoke runs don't clobber latest


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    keys = [s.key for s in SCENARIOS]
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Measure the local app directly and through a molehill tunnel.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: ~1.5 s per measurement instead of 5 s"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="seconds per measurement (default 5, or 1.5 with --quick)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="where to write the results (default benchmarks/results/latest.json;"
        " with --quick, benchmarks/results/quick.json)",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(keys),
        metavar="LIST",
        help=f"comma-separated subset of: {', '.join(keys)}",
    )
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "builtin"),
        default="auto",
        help="load generator (auto: wrk when on PATH, else the built-in one)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument(
        "--retries",
        type=int,
        default=None,
        metavar="N",
        help="re-measure a run up to N times while other processes on the "
        "machine disturb it (default 2, 0 with --quick)",
    )
    parser.add_argument(
        "--molehill",
        default=None,
        metavar="CMD",
        help="command that runs molehill (default: the one beside this Python)",
    )
    parser.add_argument(
        "--tunnel-timeout",
        type=float,
        default=20.0,
        metavar="S",
        help="give up if the tunnel does not answer within S seconds (20)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="afterwards, profile relay and agent with py-spy under the "
        "keep-alive load and write collapsed stacks to DIR (the dashboard "
        "scenario also profiles the dashboard process)",
    )
    parser.add_argument("--profile-seconds", type=int, default=8, metavar="S")
    parser.add_argument(
        "--profile-path",
        default="/",
        metavar="PATH",
        help="what the profiled load requests: / (default) or /64k",
    )
    parser.add_argument(
        "--profile-native",
        action="store_true",
        help="include C frames (libc read/write, uvloop); slows the tunnel a lot",
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the processes' logs (their directory is printed)",
    )
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="also print the table in Markdown (for benchmarks/README.md)",
    )
    parser.add_argument("--check", action="store_true", help="exit 3 when a target is missed")
    args = parser.parse_args(argv)
    args.duration = args.duration or (1.5 if args.quick else 5.0)
    args.json = args.json or (QUICK_JSON if args.quick else DEFAULT_JSON)
    if args.retries is None:
        args.retries = 0 if args.quick else 2
    wanted = [k.strip() for k in args.scenarios.split(",") if k.strip()]
    unknown = sorted(set(wanted) - set(keys))
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}; choose from {', '.join(keys)}")
    args.scenario_list = [s for s in SCENARIOS if s.key in wanted]
    return args


def pick_generator(choice: str, cpus: set[int] | None) -> Generator:
    path = find_wrk()
    if choice == "wrk" and path is None:
        raise SystemExit("run.py: --generator wrk, but wrk is not on PATH (apt-get install wrk)")
    if path is not None and choice in ("auto", "wrk"):
        return WrkGenerator(path, cpus)
    return BuiltinGenerator(cpus)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def warm_up(ctx: Context, seconds: float) -> None:
    """A short unrecorded keep-alive run on each side: connections, caches, lazy imports."""
    for side in ("direct", "tunnel"):
        ctx.measure(ctx.spec(side, connections=32, duration=seconds))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, _raise_interrupt)

    stack.raise_fd_limit()  # run.py's own clients and its children inherit it
    info = machine.machine_info()  # before pinning ourselves: it lists the usable cores
    pinning = machine.plan_pinning(not args.no_pin)
    if pinning.load:
        os.sched_setaffinity(0, pinning.load)  # this orchestrator stays off the tunnel's core
    generator = pick_generator(args.generator, pinning.load)
    started = dt.datetime.now().astimezone()
    print(f"molehill benchmark  {started:%Y-%m-%d %H:%M %Z}")
    print(
        f"  machine    {info['cpu_model']}, {info['cores']} cores, {info['python']}, "
        f"uvloop {info['uvloop']}"
    )
    molehill = machine.molehill_info(stack.molehill_command(args.molehill))
    print(f"  molehill   {molehill['version']}, data path {molehill['build']}")
    print(f"  load       {generator.describe()}")
    print(f"  pinning    {pinning.describe()}")
    print(
        f"  duration   {args.duration:g}s per measurement"
        + (" (wrk rounds to whole seconds)" if generator.name == "wrk" else "")
    )

    logdir = Path(tempfile.mkdtemp(prefix="molehill-bench-"))
    keep_logs = args.keep_logs
    the_stack = stack.Stack(logdir, pinning.tunnel, stack.molehill_command(args.molehill))
    results: list[ScenarioResult] = []
    profiles: list = []
    code = 0
    try:
        t0 = time.monotonic()
        the_stack.start(timeout=args.tunnel_timeout)
        print(
            f"  stack      app :{the_stack.app_port}, relay :{the_stack.http_port} "
            f"(agents :{the_stack.agents_port}), agent -> {the_stack.tunnel_host}, "
            f"up in {time.monotonic() - t0:.1f}s; logs in {logdir}"
        )
        ctx = Context(
            generator,
            the_stack,
            args.duration,
            args.retries,
            quick=args.quick,
            pinning=pinning,
            logdir=logdir,
            molehill=the_stack.molehill,
            tunnel_timeout=args.tunnel_timeout,
            profile_dir=args.profile,
            profile_seconds=args.profile_seconds,
        )
        warm_up(ctx, min(1.0, args.duration / 3))
        print()
        for scenario in args.scenario_list:
            print(f"  running {scenario.key:<11} {scenario.how(ctx)}", flush=True)
            began = time.monotonic()
            results.append(scenario.run(ctx))
            results[-1].seconds = time.monotonic() - began
            print(f"          {'':<11} ({results[-1].seconds:.1f}s)", flush=True)
        if args.profile is not None:
            profiles = run_profile(ctx, args, pinning.load)
    except stack.StackError as exc:
        print(f"\nrun.py: {exc}", file=sys.stderr)
        keep_logs, code = True, 1
    except KeyboardInterrupt:
        print("\nrun.py: interrupted; stopping everything", file=sys.stderr)
        code = 130
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as exc:
        print(f"\nrun.py: {exc}", file=sys.stderr)
        keep_logs, code = True, 1
    finally:
        the_stack.stop()
        stack.kill_all()
        close = getattr(generator, "close", None)
        if close is not None:
            close()
        if keep_logs:
            print(f"run.py: logs kept in {logdir}", file=sys.stderr)
        else:
            shutil.rmtree(logdir, ignore_errors=True)
    if code:
        return code

    checks = [c for t in TARGETS if (c := t.check(results)) is not None]
    print()
    print(report.table(results))
    cpu = report.cpu_table(results)
    if cpu:
        print()
        print(cpu)
    if args.markdown:
        print()
        print(report.markdown_table(results))
    if checks:
        print("\ntargets (issues 6 and 11)")
        print(report.targets_text(checks))
        if args.quick:
            print(
                "  (--quick: the transfer, streams, idle-tunnel and WebSocket echo scenarios "
                "ran scaled down -- 100 MB, 200 streams, 200 tunnels, 3 x 300 echoes -- and "
                "every run is short; the full run is the one that counts)"
            )
    for profile in profiles:
        print()
        print(profile.text())
    for result in results:
        for profile in result.profiles:
            print(f"\n{result.title}, while profiled: {profile.run.get('note', '')}")
            print(profile.text())
    payload = {
        "schema": 1,
        "date": started.isoformat(timespec="seconds"),
        "quick": args.quick,
        "duration_s": args.duration,
        "retries": args.retries,
        "machine": info,
        "molehill": molehill,
        "load_generator": {"name": generator.name, "description": generator.describe()},
        "pinning": pinning.to_json(),
        "agent_logging": "molehill http's request log to a file (one line per request)",
        "scenarios": [r.to_json() for r in results],
        "targets": checks,
        "profile": {
            "native": args.profile_native,
            "seconds": args.profile_seconds,
            "load_while_profiled": profiles[0].run,
            "processes": [p.to_json() for p in profiles],
        }
        if profiles
        else None,
    }
    report.write_json(args.json, payload)
    print(f"\nresults written to {args.json}")
    if args.check and not all(c["ok"] for c in checks):  # "unsure" (None) fails too
        return 3
    return 0


def run_profile(ctx: Context, args: argparse.Namespace, cpus: set[int] | None) -> list:
    """Keep-alive load through the tunnel while py-spy samples the relay and the agent."""
    from pyspy import Recorder, find_pyspy

    pyspy = find_pyspy()
    if pyspy is None:
        raise RuntimeError("--profile needs py-spy (pip install py-spy)")
    pids = {role: pid for role, pid in ctx.stack.pids().items() if role in ("relay", "agent")}
    outdir, seconds, path = args.profile, args.profile_seconds, args.profile_path
    print(
        f"  profiling  relay and agent with py-spy for {seconds}s under keep-alive load "
        f"(GET {path}, 32 connections through the tunnel) -> {outdir}",
        flush=True,
    )
    recorder = Recorder(pyspy, outdir, native=args.profile_native)
    recorder.start(pids, seconds, cpus)
    time.sleep(0.3)  # let py-spy attach
    load = ctx.measure(ctx.spec("tunnel", connections=32, duration=seconds, path=path))
    profiles = recorder.finish()
    shares = ", ".join(
        f"{role} {load.cpu[role] / load.cpu['wall']:.0%}"
        for role in ("app", "relay", "agent")
        if load.cpu.get("wall") and role in load.cpu
    )
    print(f"  (while profiled: {load.rps:,.0f} req/s; CPU {shares})", flush=True)
    ctx_note = {
        "path": path,
        "rps": round(load.rps, 1),
        "mb_per_s": round(load.mb_per_s, 1),
        "cpu": load.cpu,
    }
    for profile in profiles:
        profile.run = ctx_note
    return profiles


if __name__ == "__main__":
    sys.exit(main())
