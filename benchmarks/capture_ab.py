"""Captures on vs off, interleaved: keep-alive through the tunnel with and without the store.

``python benchmarks/capture_ab.py [--pairs N] [--duration S]`` runs ``run.py``'s
keep-alive scenario N times with captures on and N times off (``BENCH_AGENT_ARGS=--no-capture``),
alternating on/off so both sides see the same machine, and prints each pair's req/s ratio and the
relay + agent CPU per request (the agent's capture processes included; "writers" is their part,
during the run only: ``capture_cpu.py`` measures all of it), then the medians. A shared machine
disturbs single runs: quote the median ratio, never one absolute. Each "on" run's store is
counted afterwards: ``stored`` against the requests the tunnel answered (the store holds more: the
unrecorded warm-up and the readiness requests), and "not kept" is what the agent said it dropped
(queue full) when it stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one_run(capture: bool, duration: float, writer_cpus: str, molehill: str) -> dict[str, float]:
    """One keep-alive run; its tunnel req/s, tunnel/direct and CPU µs per request by role."""
    env = dict(os.environ)
    env["BENCH_AGENT_ARGS"] = "" if capture else "--no-capture"
    with tempfile.TemporaryDirectory(prefix="molehill-ab-") as tmp:
        out = Path(tmp) / "result.json"
        store = Path(tmp) / "captures.sqlite3"
        env["MOLEHILL_CAPTURE_FILE"] = str(store)
        env["BENCH_WRITER_CPUS"] = writer_cpus
        command = [sys.executable, str(HERE / "run.py"), "--quick", "--scenarios", "keepalive"]
        command += ["--duration", str(duration), "--json", str(out), "--keep-logs"]
        if molehill:
            command += ["--molehill", molehill]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"run.py failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        printed = done.stdout
        result = json.loads(out.read_text())
        logs = re.search(r"logs in (\S+)", printed)
        not_kept = 0
        if logs:
            agent_log = Path(logs[1]) / "agent.log"
            said = re.search(r"(\d+) exchange\(s\) not kept", agent_log.read_text(errors="replace"))
            not_kept = int(said[1]) if said else 0
            shutil.rmtree(logs[1], ignore_errors=True)
        stored = stored_count(store)
    scenario = result["scenarios"][0]
    tunnel = scenario["runs"]["tunnel"]
    requests = max(1, tunnel["requests"])
    cpu = tunnel["cpu"]
    return {
        "rps": tunnel["rps"],
        "ratio": scenario["metrics"][0]["ratio"],
        "agent_us": cpu["agent"] / requests * 1e6,
        "relay_us": cpu["relay"] / requests * 1e6,
        "writer_us": cpu.get("agent_children", 0.0) / requests * 1e6,
        "others": cpu["others"] / cpu["wall"],
        "requests": tunnel["requests"],
        "stored": stored,
        "not_kept": not_kept,
    }


def stored_count(store: Path) -> int:
    """Rows in the store once its writer process has finished (the count stops changing)."""
    if not store.exists():
        return 0
    last, steady = -1, 0
    for _ in range(300):
        with contextlib.closing(sqlite3.connect(store, timeout=10)) as db:
            count = int(db.execute("SELECT count(*) FROM exchanges").fetchone()[0])
        steady = steady + 1 if count == last else 0
        if steady >= 5:
            break
        last = count
        time.sleep(0.1)
    return last


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
    parser.add_argument(
        "--molehill", default="", help="passed to run.py: the command that runs molehill"
    )
    args = parser.parse_args()
    ratios: list[float] = []
    cpu_on: list[float] = []
    cpu_off: list[float] = []
    print(
        "pair  on req/s  off req/s  on/off  agent+relay µs/req on  off  others (cores) on  off"
        "  on: requests  stored  not kept  writers µs/req"
    )
    for n in range(args.pairs):
        # Alternate which side goes first, so a drift in the machine's load favours neither.
        order = (True, False) if n % 2 == 0 else (False, True)
        runs = {
            capture: one_run(capture, args.duration, args.writer_cpus, args.molehill)
            for capture in order
        }
        on, off = runs[True], runs[False]
        ratio = on["rps"] / off["rps"]
        ratios.append(ratio)
        cpu_on.append(on["agent_us"] + on["relay_us"])
        cpu_off.append(off["agent_us"] + off["relay_us"])
        print(
            f"{n + 1:>4}  {on['rps']:>8,.0f}  {off['rps']:>9,.0f}  {ratio:>6.3f}  "
            f"{cpu_on[-1]:>22.1f}  {cpu_off[-1]:>4.1f}  {on['others']:>18.2f}  {off['others']:.2f}"
            f"  {on['requests']:>12,.0f}  {on['stored']:>6,.0f}  {on['not_kept']:>8,.0f}"
            f"  {on['writer_us']:>14.1f}",
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
