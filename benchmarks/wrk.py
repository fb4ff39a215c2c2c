"""Running wrk (https://github.com/wg/wrk) and reading its results.

wrk is the preferred load generator: written in C, one thread on the load core saturates a
Python server easily. Its human output rounds numbers, so a small Lua ``done()`` hook prints
the exact summary as one JSON line (``MOLEHILL_WRK_JSON {...}``) that ``parse_output`` reads.
wrk only takes whole seconds for ``-d``; durations are rounded (at least 1 s).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from loadgen import LoadResult, LoadSpec

MARKER = "MOLEHILL_WRK_JSON "

# Latencies come from wrk's histogram in microseconds; errors.status counts non-2xx/3xx.
LUA_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'MOLEHILL_WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"mean_us":%.3f,"max_us":%.3f,"p50_us":%.3f,"p90_us":%.3f,"p99_us":%.3f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def find_wrk() -> str | None:
    return shutil.which("wrk")


def wrk_version(path: str) -> str:
    try:
        out = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "wrk"
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0].strip() if first else "wrk"


def whole_seconds(duration: float) -> int:
    return max(1, int(duration + 0.5))


def parse_output(text: str) -> LoadResult:
    """The LoadResult from wrk's stdout (which must contain the Lua hook's JSON line)."""
    for line in text.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            break
    else:
        raise ValueError(f"no {MARKER.strip()} line in wrk's output:\n{text[-2000:]}")
    errors = {k: data[k] for k in ("connect", "read", "write", "timeout") if data[k]}
    latency = {}
    if data["requests"]:
        latency = {
            "mean": data["mean_us"] / 1000,
            "p50": data["p50_us"] / 1000,
            "p90": data["p90_us"] / 1000,
            "p99": data["p99_us"] / 1000,
            "max": data["max_us"] / 1000,
        }
    return LoadResult(
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        bytes=data["bytes"],
        non_2xx=data["status"],
        errors=errors,
        latency_ms=latency,
        generator="wrk",
    )


class WrkGenerator:
    """Runs ``wrk -t1`` pinned to ``cpus``."""

    name = "wrk"

    def __init__(self, path: str, cpus: set[int] | None = None) -> None:
        self.path = path
        self.cpus = cpus
        self.version = wrk_version(path)
        self._dir = tempfile.TemporaryDirectory(prefix="molehill-wrk-")
        self.script = Path(self._dir.name) / "done.lua"
        self.script.write_text(LUA_DONE)

    def describe(self) -> str:
        return f"{self.version}, 1 thread"

    def command(self, spec: LoadSpec) -> list[str]:
        cmd = [
            self.path,
            "-t1",
            f"-c{spec.connections}",
            f"-d{whole_seconds(spec.duration)}s",
            "--timeout",
            "5s",
            "-s",
            str(self.script),
            "-H",
            f"Host: {spec.host_header}",
        ]
        if spec.close:
            cmd += ["-H", "Connection: close"]
        return [*cmd, f"http://{spec.host}:{spec.port}{spec.path}"]

    def run(self, spec: LoadSpec) -> LoadResult:
        from stack import pinned_preexec, track

        proc = subprocess.Popen(
            self.command(spec),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=pinned_preexec(self.cpus),
        )
        with track(proc):
            out, err = proc.communicate(timeout=whole_seconds(spec.duration) + 30)
        if proc.returncode != 0:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {(err or out).strip()[-2000:]}")
        return parse_output(out)

    def close(self) -> None:
        self._dir.cleanup()
