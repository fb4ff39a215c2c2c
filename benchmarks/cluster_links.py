"""Failover of an agent holding two links (issue 16, point 3): how long visitors of a third node
go unserved when one of the agent's two nodes is killed (kill -9) or frozen (SIGSTOP).

    .venv/bin/python benchmarks/cluster_links.py [--rounds 3] [--ping-interval 5 --ping-timeout 15]

Starts redis-server, three `molehill relay --cluster` nodes (default heartbeat unless given),
benchmarks/localapp.py and `molehill http --relay NODE1 --relay NODE2`. Each round: GET through
node3 (which has no link, and forwards to the name's first holder) and through the other linked
node every 20 ms (1 s timeout each), kill -9 (or SIGSTOP) the first holder, and time until
node3 serves again; the node is then started again on its port (or sent SIGCONT) and the round
waits for the agent's link to it. Needs redis-server; bounded (about rounds x (ping timeout +
15 s)). Prints JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import NAME, ROOT, SECRET, free_port, status_of, wait_listening


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ping-interval", type=float, default=5.0)
    parser.add_argument("--ping-timeout", type=float, default=15.0)
    args = parser.parse_args()
    binaries = {p: shutil.which(p) for p in ("redis-server", "redis-cli")}
    if None in binaries.values():
        raise SystemExit("needs redis-server and redis-cli (Debian: apt-get install redis-server)")
    work = Path(tempfile.mkdtemp(prefix="molehill-links-bench-"))
    procs: dict[str, subprocess.Popen] = {}

    def start(what: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(work / f"{what}.log", "ab")  # noqa: SIM115 (the process keeps it)
        environ = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=environ)
        log.close()
        procs[what] = proc
        return proc

    try:
        redis_port = free_port()
        redis = start("redis", [str(binaries["redis-server"]), "--port", str(redis_port),
                                "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                "--dir", str(work)])  # fmt: skip
        wait_listening(redis_port, redis, "redis-server")
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        app_port = free_port()
        wait_listening(app_port, start("app", [sys.executable, "benchmarks/localapp.py",
                                               str(app_port)]), "the local app")  # fmt: skip
        ports = {f"node{i}": (free_port(), free_port()) for i in (1, 2, 3)}

        def start_node(node: str) -> None:
            http, agents = ports[node]
            proc = start(node, [
                sys.executable, "-m", "tui.cli", "relay", "--cluster", redis_url,
                "--node-id", node, "--node-url", f"ws://127.0.0.1:{agents}",
                "--http", f"127.0.0.1:{http}", "--agents", f"127.0.0.1:{agents}",
                "--ping-interval", str(args.ping_interval),
                "--ping-timeout", str(args.ping_timeout),
            ], {"MOLEHILL_CLUSTER_SECRET": SECRET})  # fmt: skip
            wait_listening(http, proc, node)
            wait_listening(agents, proc, node)

        for node in ports:
            start_node(node)
        urls = [f"ws://127.0.0.1:{ports[n][1]}" for n in ("node1", "node2")]
        start("agent", [sys.executable, "-m", "tui.cli", "http", str(app_port), "--relay", urls[0],
                        "--relay", urls[1], "--subdomain", NAME, "--json", "--no-api"],
              {"MOLEHILL_RESUME_FILE": str(work / "resume.json")})  # fmt: skip
        redis_cli = [str(binaries["redis-cli"]), "-p", str(redis_port)]

        def holders() -> list[str]:
            out = subprocess.run([*redis_cli, "HGET", f"molehill:name:{NAME}", "nodes"],
                                 capture_output=True, text=True).stdout  # fmt: skip
            return out.split()

        def wait_for(check: Callable[[], object], what: str, timeout: float = 30.0) -> None:
            deadline = time.monotonic() + timeout
            while not check():
                if time.monotonic() > deadline:
                    raise SystemExit(f"timed out waiting for {what}; logs in {work}")
                time.sleep(0.05)

        def carries(node: str) -> bool:
            """Whether the node has the agent's link now (its /metrics: molehill_tunnels 1)."""
            try:
                conn = http.client.HTTPConnection("127.0.0.1", ports[node][1], timeout=1.0)
                conn.request("GET", "/metrics")
                text = conn.getresponse().read().decode()
                conn.close()
            except (OSError, http.client.HTTPException):
                return False
            return re.search(r"^molehill_tunnels\{[^}]*\} 1$", text, re.M) is not None

        results = []
        for round_no in range(args.rounds):
            freeze = round_no % 2 == 1  # kill, freeze, kill, ...
            wait_for(lambda: sorted(holders()) == ["node1", "node2"], "both links")
            wait_for(lambda: carries("node1") and carries("node2"), "both links on the nodes")
            wait_for(lambda: status_of(ports["node3"][0]) == 200, "node3 to serve")
            first = holders()[0]
            other = "node2" if first == "node1" else "node1"
            victim = procs[first]
            victim.send_signal(signal.SIGSTOP if freeze else signal.SIGKILL)
            hit = time.monotonic()
            other_failures = 0
            while status_of(ports["node3"][0], timeout=1.0) != 200:
                if status_of(ports[other][0], timeout=1.0) != 200:
                    other_failures += 1
                if time.monotonic() - hit > args.ping_timeout + 30:
                    raise SystemExit(f"node3 did not serve again; logs in {work}")
                time.sleep(0.02)
            took = time.monotonic() - hit
            results.append({"fault": "SIGSTOP" if freeze else "kill -9", "node": first,
                            "node3_unserved_s": round(took, 3),
                            "other_linked_node_failures": other_failures})  # fmt: skip
            if freeze:
                victim.send_signal(signal.SIGCONT)
            else:
                victim.wait()
                start_node(first)
        print(json.dumps({"rounds": results, "ping_interval": args.ping_interval,
                          "ping_timeout": args.ping_timeout}))  # fmt: skip
        return 0
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
