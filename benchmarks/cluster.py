"""Cluster figures (issue 16): keep-alive through a non-owner node vs the owner, the time from
kill -9 of a tunnel's node to its first request served elsewhere, Redis commands per request.

    .venv/bin/python benchmarks/cluster.py [--seconds 4] [--connections 8] [--rounds 2]

Starts redis-server, two `molehill relay --cluster` nodes, HAProxy with
deploy/haproxy-cluster.cfg in front of the agents' ports only (so that the agent can reconnect
to the surviving node; visitors go straight to a node, so HAProxy is not in the measured path),
benchmarks/localapp.py, and `molehill http` through HAProxy. Then, in one run:
  - wrk keep-alive (GET /, small answer) on the owner node and on the other node, alternated
    ``--rounds`` times (best of each);
  - Redis commands during the non-owner runs (CONFIG RESETSTAT, INFO commandstats) per request;
  - kill -9 of the owner node, then GET through the other node every 20 ms until one is served.
Needs wrk, redis-server and haproxy; bounded (about 2 x rounds x seconds + 15 s). Prints JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECRET = "benchmark-cluster-secret-0123456789"
NAME = "bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited ({proc.returncode}) before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def status_of(port: int, timeout: float = 1.0) -> int:
    """GET / for the tunnel through the node at ``port``; its status (0: no answer)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", "/", headers={"Host": f"{NAME}.localhost"})
        response = conn.getresponse()
        response.read()
        conn.close()
        return response.status
    except (OSError, http.client.HTTPException):
        return 0


def haproxy_config(directory: Path, agents: int, nodes: list[tuple[int, int]]) -> Path:
    """The shipped config for loopback ports (visitors' frontend on a port nobody uses)."""
    text = (ROOT / "deploy" / "haproxy-cluster.cfg").read_text()
    text = text.replace("    bind :80\n", f"    bind 127.0.0.1:{free_port()}\n")
    text = text.replace("    bind :7000\n", f"    bind 127.0.0.1:{agents}\n")
    for index in (1, 2, 3):
        if index <= len(nodes):
            http, agent = nodes[index - 1]
            text = text.replace(
                f"127.0.0.1:808{index} check port 700{index}",
                f"127.0.0.1:{http} check port {agent}",
            )
            text = text.replace(f"127.0.0.1:700{index} check", f"127.0.0.1:{agent} check")
        else:  # fewer nodes than the example: drop the rest
            text = re.sub(rf"\n    server node{index} [^\n]*", "", text)
    path = directory / "haproxy.cfg"
    path.write_text(text)
    return path


def wrk(wrk_bin: str, port: int, seconds: int, connections: int) -> tuple[float, int]:
    """Requests per second and requests done, keep-alive, one thread."""
    args = [wrk_bin, "-t1", f"-c{connections}", f"-d{seconds}s", "-H", f"Host: {NAME}.localhost"]
    out = subprocess.run([*args, f"http://127.0.0.1:{port}/"], capture_output=True, text=True)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    done = re.search(r"(\d+) requests in", out.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    if not rate or not done or errors:
        raise SystemExit(f"wrk on port {port} failed or got errors:\n{out.stdout}{out.stderr}")
    return float(rate.group(1)), int(done.group(1))


def redis_calls(redis_cli: list[str]) -> int:
    text = subprocess.run([*redis_cli, "INFO", "commandstats"], capture_output=True, text=True)
    calls = re.findall(r"^cmdstat_([a-z|]+):calls=(\d+)", text.stdout, re.M)
    return sum(int(n) for cmd, n in calls if cmd not in ("info", "config|resetstat"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    programs = {p: shutil.which(p) for p in ("wrk", "redis-server", "redis-cli", "haproxy")}
    missing = [p for p, path in programs.items() if path is None]
    if missing:
        raise SystemExit(
            f"needs {', '.join(missing)} (Debian: apt-get install wrk redis-server haproxy)"
        )
    procs: list[subprocess.Popen] = []
    work = Path(tempfile.mkdtemp(prefix="molehill-cluster-bench-"))

    def start(what: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(work / f"{what}.log", "wb")  # noqa: SIM115 (the process keeps it)
        environ = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=environ)
        log.close()
        procs.append(proc)
        return proc

    try:
        redis_port = free_port()
        redis = start(
            "redis",
            [
                programs["redis-server"],
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(work),
            ],
        )  # type: ignore[list-item]
        wait_listening(redis_port, redis, "redis-server")
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        redis_cli = [programs["redis-cli"], "-p", str(redis_port)]  # type: ignore[list-item]
        app_port = free_port()
        app = start("app", [sys.executable, "benchmarks/localapp.py", str(app_port)])
        wait_listening(app_port, app, "the local app")
        nodes: list[tuple[subprocess.Popen, int, int]] = []
        for index in (1, 2):
            http, agents = free_port(), free_port()
            node = start(f"node{index}", [
                sys.executable, "-m", "tui.cli", "relay", "--cluster", redis_url,
                "--node-id", f"node{index}", "--node-url", f"ws://127.0.0.1:{agents}",
                "--http", f"127.0.0.1:{http}", "--agents", f"127.0.0.1:{agents}",
                "--log-format", "json",
            ], {"MOLEHILL_CLUSTER_SECRET": SECRET})  # fmt: skip
            nodes.append((node, http, agents))
        for node, http, agents in nodes:
            wait_listening(http, node, "a node")
            wait_listening(agents, node, "a node")
        lb_agents = free_port()
        config = haproxy_config(work, lb_agents, [(h, a) for _, h, a in nodes])
        haproxy = start("haproxy", [programs["haproxy"], "-db", "-f", str(config)])  # type: ignore[list-item]
        wait_listening(lb_agents, haproxy, "haproxy")
        agent = start("agent", [
            sys.executable, "-m", "tui.cli", "http", str(app_port), "--relay",
            f"ws://127.0.0.1:{lb_agents}", "--subdomain", NAME, "--json", "--no-api",
        ], {"MOLEHILL_RESUME_FILE": str(work / "resume.json")})  # fmt: skip
        deadline = time.monotonic() + 20
        while not all(status_of(http) == 200 for _, http, _ in nodes):
            if agent.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the tunnel did not come up: {(work / 'agent.log').read_text()}")
            time.sleep(0.1)
        owner_id = subprocess.run([*redis_cli, "HGET", f"molehill:name:{NAME}", "node"],
                                  capture_output=True, text=True).stdout.strip()  # fmt: skip
        owner = 0 if owner_id == "node1" else 1
        owner_http, other_http = nodes[owner][1], nodes[1 - owner][1]

        best_owner = best_other = 0.0
        other_requests = other_commands = 0
        for _ in range(args.rounds):
            rate, _done = wrk(programs["wrk"], owner_http, args.seconds, args.connections)  # type: ignore[arg-type]
            best_owner = max(best_owner, rate)
            subprocess.run([*redis_cli, "CONFIG", "RESETSTAT"], capture_output=True)
            rate, done = wrk(programs["wrk"], other_http, args.seconds, args.connections)  # type: ignore[arg-type]
            other_commands += redis_calls(redis_cli)
            other_requests += done
            best_other = max(best_other, rate)

        nodes[owner][0].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        while status_of(other_http, timeout=0.5) != 200:
            if time.monotonic() - killed > 30:
                raise SystemExit("the tunnel was not served again within 30 s of the kill")
            time.sleep(0.02)
        moved = time.monotonic() - killed
        print(json.dumps({
            "keepalive_owner_rps": round(best_owner),
            "keepalive_non_owner_rps": round(best_other),
            "non_owner_ratio": round(best_other / best_owner, 3),
            "redis_commands_during_non_owner_runs": other_commands,
            "requests_during_non_owner_runs": other_requests,
            "redis_commands_per_request": round(other_commands / max(1, other_requests), 6),
            "kill_to_first_success_s": round(moved, 3),
            "seconds": args.seconds, "connections": args.connections, "rounds": args.rounds,
        }))  # fmt: skip
        return 0
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
