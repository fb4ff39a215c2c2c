"""Instructions per request, deterministic: app, relay, agent, client in one cachegrind process.

On a shared machine CPU times vary 2-3x from run to run; instruction counts do not. This runs
the benchmark's local app (``localapp.py``), a :class:`relay.server.relay.Relay` and an agent as
``molehill http`` runs it (``run_agents``: the request log into a file, captures to a store by a
writer process unless ``--no-capture``) in one uvloop process, with a raw client:

* ``keepalive``: ``GET /`` on C keep-alive connections, each sending the next request when the
  whole response is in (as the benchmark's load);
* ``wsecho``: one WebSocket, a 32-byte masked binary message at a time, waiting for its echo.

``--count N`` ops are made after a warm-up. Under ``--cachegrind`` the script runs itself under
``valgrind --tool=cachegrind`` four times (tunnel and direct, each with N and with 0 timed ops)
and prints (tunnel(N) - tunnel(0) - direct(N) + direct(0)) / N: the user-space instructions the
relay and the agent spend per op (system calls are not in it; the writer process, a child,
is not traced). Repeat runs agree within ~1%. Without ``--cachegrind`` it just runs once and
prints the wall time (a smoke test of the harness).

    .venv/bin/python benchmarks/instructions.py --cachegrind --scenario keepalive --count 2000
    .venv/bin/python benchmarks/instructions.py --cachegrind --scenario wsecho --count 1000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

# Unrecorded ops first. For wsecho, 600 round trips (1,200 messages) go past the capture's
# 1,000 messages per connection: the timed ones cost what most of the benchmark's 5,100 do.
WARMUP = {"keepalive": 300, "wsecho": 600}


class _Counter(asyncio.Protocol):
    """One keep-alive client connection: a request, then wait for ``size`` bytes, ``left`` times."""

    def __init__(self, request: bytes, size: int, left: int, done: asyncio.Future[None]) -> None:
        self.request, self.size, self.left, self.done = request, size, left, done
        self.got = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._next()

    def _next(self) -> None:
        if self.left == 0:
            if not self.done.done():
                self.done.set_result(None)
            return
        self.left -= 1
        assert self.transport is not None
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        while self.got >= self.size:
            self.got -= self.size
            self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"closed early: {exc}"))


async def _response_size(port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)[1])  # type: ignore[index]
    writer.close()
    return len(head) + length


async def keepalive(port: int, host: str, connections: int, count: int) -> None:
    loop = asyncio.get_running_loop()
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    size = await _response_size(port, request)
    per = [count // connections + (1 if i < count % connections else 0) for i in range(connections)]
    # Warm-up and timed ops on the same connections, so only the ops differ between N and 0.
    dones = []
    transports = []
    for i in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        warm = WARMUP["keepalive"] // connections
        t, _ = await loop.create_connection(
            lambda d=done, w=warm, n=per[i]: _Counter(request, size, w + n, d), "127.0.0.1", port
        )
        transports.append(t)
        dones.append(done)
    await asyncio.gather(*dones)
    for t in transports:
        t.close()


async def wsecho(port: int, host: str, count: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"no WebSocket: {head[:80]!r}")
    mask = b"\x01\x02\x03\x04"
    payload = bytes(32)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    message = bytes([0x82, 0x80 | 32]) + mask + masked
    for _ in range(WARMUP["wsecho"] + count):
        writer.write(message)
        echo = await reader.readexactly(34)
        if echo[2:] != payload:
            raise SystemExit("echo differs")
    writer.write(bytes([0x88, 0x82]) + mask + bytes(b ^ mask[i] for i, b in enumerate(b"\x03\xe8")))
    with contextlib.suppress(Exception):
        await reader.read()
    writer.close()


async def run(args: argparse.Namespace) -> None:
    import localapp

    from relay.agent.client import AgentSettings
    from relay.server.relay import Relay
    from relay.server.settings import RelaySettings
    from tui.captures import open_capture_writer
    from tui.headless import run_agents
    from tui.output import LineWriter

    loop = asyncio.get_running_loop()
    app = await loop.create_server(localapp.AppProtocol, "127.0.0.1", 0)
    app_port = app.sockets[0].getsockname()[1]
    port, host = app_port, "127.0.0.1"
    stop = asyncio.Event()
    agents = None
    relay = None
    if not args.direct:
        relay = Relay(RelaySettings(http_port=0, agents_port=0))
        await relay.start()
        settings = AgentSettings(local_port=app_port, relay=relay.agents_url, name="bench")
        log = open(args.log, "ab")  # noqa: SIM115 (the writer owns it until the end)
        out = LineWriter(log.fileno(), False)
        captures = open_capture_writer(not args.no_capture)
        agents = asyncio.create_task(run_agents([(None, settings)], False, stop, out, captures))
        port, host = relay.http_port, f"bench.localhost:{relay.http_port}"
        for _ in range(200):
            with contextlib.suppress(Exception):
                if await _response_size(port, f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()):
                    break
            await asyncio.sleep(0.05)
    started = time.perf_counter()
    if args.scenario == "keepalive":
        await keepalive(port, host, args.connections, args.count)
    else:
        await wsecho(port, host, args.count)
    wall = time.perf_counter() - started
    if agents is not None and relay is not None:
        await asyncio.sleep(0.1)  # the last records reach the log
        stop.set()
        await agents
        await relay.stop()
    app.close()
    print(f"done {args.scenario} {args.count} in {wall:.3f}s", file=sys.stderr)


def cachegrind(args: argparse.Namespace) -> None:
    """Four runs under cachegrind; print the relay + agent instructions per op."""
    base = [sys.executable, __file__, "--scenario", args.scenario]
    base += ["--connections", str(args.connections)]
    if args.no_capture:
        base.append("--no-capture")
    counts: dict[tuple[bool, int], int] = {}
    with tempfile.TemporaryDirectory(prefix="molehill-instr-") as tmp:
        store = str(Path(tmp) / "captures.sqlite3")
        env = dict(os.environ, MOLEHILL_CAPTURE_FILE=store, PYTHONHASHSEED="0")
        for direct in (False, True):
            for n in (args.count, 0):
                command = ["valgrind", "--tool=cachegrind", f"--cachegrind-out-file={tmp}/cg.out"]
                command += ["--cache-sim=no", *base, "--count", str(n), "--log", f"{tmp}/log"]
                if direct:
                    command.append("--direct")
                done = subprocess.run(command, env=env, capture_output=True, text=True)
                found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
                if done.returncode != 0 or found is None:
                    sys.exit(f"cachegrind run failed:\n{done.stderr[-3000:]}")
                counts[(direct, n)] = int(found[1].replace(",", ""))
    tunnel = counts[(False, args.count)] - counts[(False, 0)]
    direct = counts[(True, args.count)] - counts[(True, 0)]
    per = args.count
    captures = "off" if args.no_capture else "on"
    print(
        f"{args.scenario} (connections {args.connections}, captures {captures}): relay + agent "
        f"{(tunnel - direct) / per:,.0f} instructions per op "
        f"(tunnel {tunnel / per:,.0f}, direct {direct / per:,.0f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=("keepalive", "wsecho"), default="keepalive")
    parser.add_argument("--count", type=int, default=2000, help="timed ops (2000)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections (32)")
    parser.add_argument("--no-capture", action="store_true", help="the agent with --no-capture")
    parser.add_argument("--direct", action="store_true", help="the client talks to the app")
    parser.add_argument("--cachegrind", action="store_true", help="count instructions (4 runs)")
    parser.add_argument("--log", default=os.devnull, help="the agent's request log file")
    args = parser.parse_args()
    if args.cachegrind:
        cachegrind(args)
        return 0
    import uvloop

    uvloop.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
