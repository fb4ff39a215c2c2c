"""Captures on vs off, interleaved: keep-alive through the tunnel with and without the store.

``python benchmarks/capture_ab.py [--pairs N] [--duration S]`` runs ``run.py``'s
keep-alive scenario N times with captures on and N times off (``BENCH_AGENT_ARGS=--no-capture``),
alternating on/off so both sides see the same machine, and prints each pair's req/s ratio and the
relay + agent CPU per request, then the medians. A shared machine disturbs single runs: quote the
median ratio, never one absolute. Each "on" run's store is counted afterwards: ``stored`` against
the requests the tunnel answered shows that nothing was dropped to keep up (the store holds a few
more: warm-up and readiness requests).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one_run(capture: bool, duration: float, writer_cpus: str) -> dict[str, float]:
    """One keep-alive run; its tunnel req/s, tunnel/direct and CPU µs per request by role."""
    env = dict(os.environ)
    env["BENCH_AGENT_ARGS"] = "" if capture else "--no-capture"
    with tempfile.TemporaryDirectory(prefix="molehill-ab-") as tmp:
        out = Path(tmp) / "result.json"
        store = Path(tmp) / "captures.sqlite3"
        env["MOLEHILL_CAPTURE_FILE"] = str(store)
        env["BENCH_WRITER_CPUS"] = writer_cpus
        command = [sys.executable, str(HERE / "run.py"), "--quick", "--scenarios", "keepalive"]
        command += ["--duration", str(duration), "--json", str(out)]
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        result = json.loads(out.read_text())
        stored = 0
        if store.exists():
            with sqlite3.connect(store) as db:
                stored = db.execute("SELECT count(*) FROM exchanges").fetchone()[0]
    scenario = result["scenarios"][0]
    tunnel = scenario["runs"]["tunnel"]
    requests = max(1, tunnel["requests"])
    cpu = tunnel["cpu"]
    return {
        "rps": tunnel["rps"],
        "ratio": scenario["metrics"][0]["ratio"],
        "agent_us": cpu["agent"] / requests * 1e6,
        "relay_us": cpu["relay"] / requests * 1e6,
        "others": cpu["others"] / cpu["wall"],
        "requests": tunnel["requests"],
        "stored": stored,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per side (3)")
    parser.add_argument(
        "--writer-cpus",
        default="",
        help="move the capture writer process to these CPUs (e.g. 1: the load generator's "
        "core); default: it stays on the tunnel's core, where it was born",
    )
    args = parser.parse_args()
    ratios: list[float] = []
    cpu_on: list[float] = []
    cpu_off: list[float] = []
    print(
        "pair  on req/s  off req/s  on/off  agent+relay µs/req on  off  others (cores) on  off"
        "  on: requests  stored"
    )
    for n in range(args.pairs):
        # Alternate which side goes first, so a drift in the machine's load favours neither.
        order = (True, False) if n % 2 == 0 else (False, True)
        runs = {capture: one_run(capture, args.duration, args.writer_cpus) for capture in order}
        on, off = runs[True], runs[False]
        ratio = on["rps"] / off["rps"]
        ratios.append(ratio)
        cpu_on.append(on["agent_us"] + on["relay_us"])
        cpu_off.append(off["agent_us"] + off["relay_us"])
        print(
            f"{n + 1:>4}  {on['rps']:>8,.0f}  {off['rps']:>9,.0f}  {ratio:>6.3f}  "
            f"{cpu_on[-1]:>22.1f}  {cpu_off[-1]:>4.1f}  {on['others']:>18.2f}  {off['others']:.2f}"
            f"  {on['requests']:>12,.0f}  {on['stored']:>6,.0f}",
            flush=True,
        )
    print(
        f"median on/off {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max "
        f"{max(ratios):.3f}); CPU µs/request on {statistics.median(cpu_on):.1f}, "
        f"off {statistics.median(cpu_off):.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
