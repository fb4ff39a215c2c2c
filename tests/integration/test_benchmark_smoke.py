"""The benchmark command runs end to end (a short run: its figures are not checked here)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_benchmark_runs_direct_and_through_the_tunnel(tmp_path):
    if os.environ.get("CI") == "true":
        assert shutil.which("wrk"), ".ci/run installs wrk; it is missing"
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        # One second a measurement (wrk's shortest): the harness is what is tested here.
        [sys.executable, "benchmarks/run.py", "--quick", "--duration", "1", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())
    keys = {s["key"] for s in result["scenarios"]}
    assert {"keepalive", "sequential", "newconn", "64k", "wsecho"} <= keys
    for scenario in result["scenarios"]:
        for metric in scenario["metrics"]:
            if metric.get("direct") is None:
                continue
            if metric["key"].endswith("event_spacing_p99_ms"):
                # Lateness against the first event's clock: negative when the first one came
                # late and the rest on time (CI saw -0.998 ms directly).
                assert math.isfinite(metric["direct"]) and math.isfinite(metric["tunnel"]), metric
            else:
                assert metric["direct"] > 0 and metric["tunnel"] > 0, metric


@pytest.mark.parametrize(
    "args",
    [
        ["--scenario", "keepalive", "--count", "200", "--connections", "4"],
        ["--scenario", "wsecho", "--count", "20"],
        ["--scenario", "wsecho", "--count", "20", "--direct"],
    ],
)
def test_the_instruction_harness_runs_its_ops(tmp_path, args):
    """benchmarks/instructions.py without cachegrind: the one-process stack serves every op
    (a short echo or response would hang it; the figures come from valgrind, not checked here)."""
    log = tmp_path / "requests.log"
    env = dict(os.environ, MOLEHILL_CAPTURE_FILE=str(tmp_path / "captures.sqlite3"))
    proc = subprocess.run(
        [sys.executable, "benchmarks/instructions.py", *args, "--log", str(log)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"done {args[1]} {args[3]}" in proc.stderr
    if "--direct" not in args:
        assert "GET" in log.read_text()  # the agent logged requests as molehill http does


def test_the_sequential_tool_measures_both_sides_and_lets_the_store_go(tmp_path):
    """benchmarks/sequential.py: both sides answered, each process's CPU read, and the capture
    store it stopped is running again afterwards (it would hold the agent's exchanges)."""
    env = dict(os.environ, MOLEHILL_CAPTURE_FILE=str(tmp_path / "captures.sqlite3"))
    proc = subprocess.run(
        [sys.executable, "benchmarks/sequential.py", "--count", "300", "--stop-store"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert out.count("direct: mean") == 1 and out.count("tunnel: mean") == 1
    assert "relay " in out and "agent " in out and "us  system" in out
    assert "capture store" in out and "stopped during these requests" in out
