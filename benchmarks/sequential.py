"""One request at a time through the tunnel: the latency, its tail, and each process's CPU.

``python benchmarks/sequential.py [--count N] [--stop-store] [--molehill CMD]`` starts the
benchmark's stack (app, relay and agent pinned to CPU 0, as ``run.py`` does), then sends N
keep-alive ``GET /`` requests one after the other from this process on CPU 1: first straight to
the app, then through the tunnel. For each side it prints the latency summary (mean, p50, p90,
p99, p99.9, max), the mean of each quarter second (a tail that comes in bursts shows there), and
the user and system CPU per request, and the voluntary context switches per request, of every
thread of the app, the relay, the agent and the agent's child processes (the capture spooler and
store), from ``/proc/PID/task/*``.

``--stop-store`` stops the capture store process (SIGSTOP) during the tunnel's requests and lets
it go after: what the store's work costs the tunnel's latency, in one sitting.
``BENCH_AGENT_ARGS=--no-capture`` runs the agent without captures. Standalone, not in ``run.py``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import stack as st  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# (role, thread name, tid) -> (user ticks, system ticks, voluntary switches)
Figures = dict[tuple[str, str, str], tuple[int, int, int]]


def family(stack: st.Stack) -> dict[str, int]:
    """Role -> pid: the stack's processes and the agent's descendants (``child PID``)."""
    pids = dict(stack.pids())
    todo = [pids["agent"]]
    while todo:
        for child in st.child_pids(todo.pop()):
            pids[f"child {child}"] = child
            todo.append(child)
    return pids


def figures(pids: dict[str, int]) -> Figures:
    out: Figures = {}
    for role, pid in pids.items():
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            base = f"/proc/{pid}/task/{tid}"
            try:
                fields = Path(f"{base}/stat").read_text().rpartition(")")[2].split()
                name = Path(f"{base}/comm").read_text().strip()
                status = Path(f"{base}/status").read_text()
            except OSError:
                continue
            switches = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
            out[(role, name, tid)] = (int(fields[11]), int(fields[12]), switches)
    return out


def store_pid(pids: dict[str, int]) -> int | None:
    for role, pid in pids.items():
        if role.startswith("child"):
            try:
                if b"capture_process" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except OSError:
                continue
    return None


def requests(port: int, host: str, count: int) -> tuple[list[float], list[float]]:
    """(start offsets, latencies) in seconds of ``count`` sequential keep-alive requests."""
    conn = socket.create_connection(("127.0.0.1", port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    starts, latencies = [], []
    origin = time.perf_counter()
    for _ in range(count):
        began = time.perf_counter()
        conn.sendall(request)
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                raise SystemExit("the connection closed before the answer was whole")
            data += chunk
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                length = int(data[:end].lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(data) >= end + 4 + length:
                    break
        starts.append(began - origin)
        latencies.append(time.perf_counter() - began)
    conn.close()
    return starts, latencies


def report(side: str, starts: list[float], latencies: list[float], used: list[str]) -> None:
    ordered = sorted(latencies)
    n = len(ordered)
    ms = [1000 * x for x in (statistics.fmean(latencies), ordered[n // 2], ordered[n * 9 // 10])]
    ms += [1000 * ordered[min(n - 1, n * 99 // 100)], 1000 * ordered[min(n - 1, n * 999 // 1000)]]
    ms.append(1000 * ordered[-1])
    print(
        f"{side}: mean {ms[0]:.3f}  p50 {ms[1]:.3f}  p90 {ms[2]:.3f}  p99 {ms[3]:.3f}  "
        f"p99.9 {ms[4]:.3f}  max {ms[5]:.3f} ms"
    )
    quarters: dict[int, list[float]] = defaultdict(list)
    for start, latency in zip(starts, latencies, strict=True):
        quarters[int(start * 4)].append(latency)
    means = " ".join(f"{1000 * statistics.fmean(v):.2f}" for _, v in sorted(quarters.items()))
    print(f"  mean of each quarter second (ms): {means}")
    for line in used:
        print(line)


def cpu_lines(before: Figures, after: Figures, count: int) -> list[str]:
    lines = []
    for key, (user, system, switches) in after.items():
        u0, s0, v0 = before.get(key, (0, 0, 0))
        du, ds, dv = user - u0, system - s0, switches - v0
        if du or ds or dv > count // 100:
            role, name, tid = key
            lines.append(
                f"  {role:<12} {name + '/' + tid:<22} user {du * 1e6 / TICKS / count:6.1f} us  "
                f"system {ds * 1e6 / TICKS / count:6.1f} us  switches {dv / count:.2f}  per request"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=15_000, help="requests per side")
    parser.add_argument("--stop-store", action="store_true", help="SIGSTOP the capture store")
    parser.add_argument("--molehill", help="command that runs molehill (default: this Python's)")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("sequential.py reads /proc: Linux only", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        stack = st.Stack(Path(tmp), cpus={0}, molehill=st.molehill_command(args.molehill))
        try:
            stack.start()
            os.sched_setaffinity(0, {1})
            time.sleep(0.5)
            for side, port, host in (
                ("direct", stack.app_port, stack.direct_host),
                ("tunnel", stack.http_port, stack.tunnel_host),
            ):
                requests(port, host, min(500, args.count))  # warm-up
                pids = family(stack)
                stopped = store_pid(pids) if side == "tunnel" and args.stop_store else None
                if stopped is not None:
                    os.kill(stopped, signal.SIGSTOP)
                before = figures(pids)
                starts, latencies = requests(port, host, args.count)
                used = cpu_lines(before, figures(pids), args.count)
                if stopped is not None:
                    os.kill(stopped, signal.SIGCONT)
                    used.append(f"  (capture store {stopped} stopped during these requests)")
                report(side, starts, latencies, used)
        finally:
            st.kill_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
