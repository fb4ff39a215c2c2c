"""Memory per idle tunnel: 1,000 agents (1,000 tunnels) on one relay.

Load agents (one process, one uvloop loop, one websocket per agent)::

    python benchmarks/loadagents.py --relay ws://127.0.0.1:AGENTS --app-port APP --count 1000

runs ``count`` ``relay.agent.Agent`` instances, each with its own websocket and its own tunnel
(``AgentSettings(local_port=APP, relay=URL, name=f"t{i}")``) -- not 1,000 ``molehill http``
processes. It talks to its parent line by line:

1. it connects ``--warmup`` agents (``w0``, ``w1``...), then prints ``warm N RSS_KIB``;
2. on ``go`` (a line on stdin) it connects the ``count`` agents, ``--batch`` at a time, and
   prints ``online N SECONDS RSS_KIB`` once every one is online (``error ...`` and exit 1 if one
   is refused or not online within 30 s);
3. at the end of stdin it stops them all and exits.

The scenario (``IdleTunnels``) starts a fresh relay (pinned to the tunnel core; the load agents
go on the load core), reads the relay's RSS once the warm-up agents are connected and it
settled, lets the ``count`` agents connect, checks that the first and the last tunnel answer a
request, waits for the relay to settle (a heartbeat round included), and reports
(RSS after - RSS before) / count: the relay's memory per idle tunnel. The warm-up agents keep
first-use allocations (websockets' server code paths, lazy imports) out of that figure. The
load agents' own RSS growth per agent is reported too, for information.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

from cpuwatch import CpuMeter
from loadgen import LoadResult
from memory import rss_kib, wait_settled
from scenarios import Context, Metric, Scenario, ScenarioResult
from stack import StackError, _register, _stop, http_get, pinned_preexec, raise_fd_limit

HERE = Path(__file__).resolve().parent
ONLINE_TIMEOUT = 30.0


def _say(*parts: object) -> None:
    print(*parts, flush=True)


async def _connect(
    agents: list, names: list[str], app_port: int, relay: str, batch: int, tasks: list[asyncio.Task]
) -> None:
    from relay.agent import Agent, AgentSettings

    for start in range(0, len(names), batch):
        group, runs = [], []
        for name in names[start : start + batch]:
            agent = Agent(AgentSettings(local_port=app_port, relay=relay, name=name))
            agents.append(agent)
            group.append(agent)
            runs.append(asyncio.create_task(agent.run()))
        tasks.extend(runs)
        waits = {asyncio.create_task(a.wait_online()) for a in group}
        deadline = time.monotonic() + ONLINE_TIMEOUT
        while waits:  # until all are online, one run() ended (refused), or the deadline
            done, waits = await asyncio.wait(
                waits | set(runs),
                timeout=max(0.0, deadline - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            waits -= set(runs)
            ended = [t for t in runs if t.done()]
            if ended or not done:
                for t in waits:
                    t.cancel()
                why = (ended[0].exception() or "run() returned") if ended else "timed out"
                offline = [a.name for a in group if a.state != "online"][:5]
                raise RuntimeError(f"agents not online ({', '.join(offline)}...): {why}")


async def load_agents(relay: str, app_port: int, count: int, warmup: int, batch: int) -> int:
    import os

    loop = asyncio.get_running_loop()
    me = os.getpid()
    agents: list = []
    tasks: list[asyncio.Task] = []
    try:
        await _connect(agents, [f"w{i}" for i in range(warmup)], app_port, relay, batch, tasks)
        _say("warm", len(agents), rss_kib(me))
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if line.strip() != "go":
            return 0
        started = time.perf_counter()
        await _connect(agents, [f"t{i}" for i in range(count)], app_port, relay, batch, tasks)
        _say("online", count, f"{time.perf_counter() - started:.3f}", rss_kib(me))
        while await loop.run_in_executor(None, sys.stdin.readline):
            pass  # until the parent closes stdin
        return 0
    except RuntimeError as exc:
        _say("error", exc)
        return 1
    finally:
        for agent in agents:
            agent.stop()
        if tasks:
            await asyncio.wait(tasks, timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run many idle molehill agents in one process.")
    parser.add_argument("--relay", required=True, help="the relay's agents URL (ws://...)")
    parser.add_argument("--app-port", type=int, required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args(argv)
    raise_fd_limit()
    sys.path.insert(0, str(HERE.parent))  # relay/ when molehill is not installed
    from relay.transport.runtime import new_event_loop

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(
            load_agents(args.relay, args.app_port, args.count, args.warmup, args.batch)
        )


# -- the scenario ----------------------------------------------------------------------------------


class _Lines:
    """Reads the load agents' stdout line by line, with a deadline."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc

    def expect(self, word: str, timeout: float) -> list[str]:
        import selectors

        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise StackError(f"the load agents did not say '{word}' within {timeout:.0f}s")
                line = self.proc.stdout.readline()
                if not line:
                    raise StackError(f"the load agents exited ({self.proc.wait()}) before '{word}'")
                parts = line.split()
                if parts and parts[0] == word:
                    return parts
                if parts and parts[0] == "error":
                    raise StackError(f"load agents: {line.strip()}")


class IdleTunnels(Scenario):
    key = "idle"
    title = "memory per idle tunnel"

    def count(self, ctx: Context) -> int:
        return 200 if ctx.quick else 1000

    def how(self, ctx: Context) -> str:
        scaled = " (--quick: scaled down from 1,000)" if ctx.quick else ""
        return (
            f"{self.count(ctx):,} agents (benchmarks/loadagents.py, one process) on a fresh "
            f"relay; relay RSS before and after, per tunnel{scaled}"
        )

    def run(self, ctx: Context) -> ScenarioResult:
        count = self.count(ctx)
        stack = ctx.fresh_stack("idle")
        stack.app_port = ctx.stack.app_port  # the tunnels point at the main app
        proc = None
        try:
            stack.start_relay(ctx.tunnel_timeout)
            relay_pid = stack.procs["relay"].pid
            cmd = [
                sys.executable,
                str(HERE / "loadagents.py"),
                "--relay",
                stack.agents_url,
                "--app-port",
                str(stack.app_port),
                "--count",
                str(count),
            ]
            log = open(stack.logdir / "loadagents.log", "w")  # noqa: SIM115 -- closed below
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                preexec_fn=pinned_preexec(ctx.pinning.load),
            )
            log.close()
            _register(proc)
            lines = _Lines(proc)
            warm = lines.expect("warm", ctx.tunnel_timeout)
            before = wait_settled({"relay": relay_pid})["relay"]
            assert proc.stdin is not None
            meter = CpuMeter({"relay": relay_pid, "load agents": proc.pid})
            meter.start()
            proc.stdin.write("go\n")
            proc.stdin.flush()
            online = lines.expect("online", ONLINE_TIMEOUT * (count // 100 + 1))
            cpu = meter.stop()
            probes = [self._probe(stack.http_port, f"t{i}") for i in (0, count - 1)]
            time.sleep(1.0 if ctx.quick else 2.0)  # a heartbeat round (the first ping is at once)
            after = wait_settled({"relay": relay_pid}, seconds=0.5)["relay"]
            agents_pid = proc.pid
            agents_after = rss_kib(agents_pid) or int(online[3])
        finally:
            if proc is not None:
                if proc.stdin is not None:
                    proc.stdin.close()
                _stop([proc], grace=5.0)
            stack.stop()
        agent_kib = (agents_after - int(warm[2])) / count
        relay_kib = (after - before) / count
        notes = [f"tunnel {p}" for p in probes if p]
        if ctx.quick:
            notes.append(f"--quick: {count} tunnels instead of 1,000")
        details = {
            "count": count,
            "connect_s": float(online[2]),
            "relay_rss_before_kib": before,
            "relay_rss_after_kib": after,
            "agents_rss_warm_kib": int(warm[2]),
            "agents_rss_after_kib": agents_after,
        }
        metrics = [
            Metric(
                f"{count:,} idle tunnels: relay RSS per tunnel (KiB)",
                "KiB",
                None,
                relay_kib,
                "lower",
                1,
                False,
                key="idle.relay_kib_per_tunnel",
            ),
            Metric(
                f"{count:,} idle tunnels: agent process RSS per tunnel (KiB)",
                "KiB",
                None,
                agent_kib,
                "lower",
                1,
                False,
                key="idle.agent_kib_per_tunnel",
            ),
            Metric(
                f"{count:,} agents connect, all online (s)",
                "s",
                None,
                float(online[2]),
                "lower",
                2,
                False,
                key="idle.connect_s",
            ),
        ]
        run = LoadResult(
            requests=count, duration_s=float(online[2]), generator="loadagents.py", cpu=cpu
        )
        return ScenarioResult(
            self.key,
            f"{count:,} idle tunnels",
            metrics,
            {"connect": run},
            notes,
            how=self.how(ctx),
            details=details,
        )

    @staticmethod
    def _probe(port: int, name: str) -> str:
        """'' if the tunnel answers through the relay, else what went wrong."""
        try:
            status, _ = http_get(port, f"{name}.localhost:{port}", "/", timeout=5.0)
        except OSError as exc:
            return f"{name}: {exc}"
        return "" if status == 200 else f"{name} answered HTTP {status}"


if __name__ == "__main__":
    sys.exit(main())
