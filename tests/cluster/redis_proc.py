"""A real redis-server for one test: loopback, a free port, no persistence, stopped after."""

from __future__ import annotations

import itertools
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from tests.support.cli import require_program

# Below the kernel's ephemeral range (32768 and up): a port handed out there can be taken as
# the source port of any outgoing connection before the server binds it (CI once saw a node fail
# with "address already in use" that way). Each xdist worker takes ports from its own block.
_BLOCK = 3000
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) % 4
_PORTS = itertools.count(random.randrange(_BLOCK))


def free_port() -> int:
    """A loopback port free right now (redis-server cannot take port 0 and report it), not in
    the range the kernel picks source ports from."""
    base = 20000 + _WORKER * _BLOCK
    for _ in range(_BLOCK):
        port = base + next(_PORTS) % _BLOCK
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {base}-{base + _BLOCK - 1}")


class RedisServer:
    """``redis-server`` on 127.0.0.1:``port``; ``kill()`` and ``start()`` again for outages."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        binary = require_program("redis-server")  # CI=true: fails, not skips, without it
        assert binary is not None
        self.binary = binary
        self.directory = directory
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 (the process keeps it)
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited: {text}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port} within 10 s")

    def kill(self) -> None:
        """kill -9: what a crashed Redis (or a cut network) looks like to the nodes."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def client(self) -> redis.Redis:
        """A plain (blocking) client, for a test to look at or change what the nodes keep."""
        return redis.Redis.from_url(self.url, socket_timeout=5, decode_responses=True)
