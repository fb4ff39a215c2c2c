"""A terminal for the dashboard benchmark: a private tmux server, and a pinning exec wrapper.

``python benchmarks/terminal.py exec --cpus 0 -- CMD...`` pins itself to the CPUs, lifts the
open-files limit and execs CMD: the dashboard runs under tmux but on the tunnel's core.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from stack import StackError, _register, _stop, pinned_preexec, raise_fd_limit

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT = 160, 45


def exec_pinned(argv: list[str]) -> int:
    """``terminal.py exec --cpus 0,1 -- CMD...``: pin, lift the fd limit, exec CMD."""
    parser = argparse.ArgumentParser(prog="terminal.py exec")
    parser.add_argument("--cpus", default="")
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if args.cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    raise_fd_limit()
    os.execvp(cmd[0], cmd)
    return 127  # not reached


class Terminal:
    """A private tmux server (``-D``: not a daemon, our child) with one session."""

    def __init__(self, logdir: Path, cpus: set[int] | None) -> None:
        tmux = shutil.which("tmux")
        if tmux is None:
            raise StackError("the dashboard scenario needs tmux (apt-get install tmux)")
        self.tmux = tmux
        self.socket = f"molehill-bench-{os.getpid()}"
        self.logdir = logdir
        self.cpus = cpus
        self.server: subprocess.Popen | None = None
        self.pane_pid = 0
        self.socket_path = ""
        self.capture_s: list[float] = []  # how long each capture took

    def _cmd(self, *args: str) -> list[str]:
        return [self.tmux, "-L", self.socket, "-f", "/dev/null", *args]

    def tmux_run(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=10)
        if check and out.returncode != 0:
            raise StackError(f"tmux {' '.join(args[:2])} failed: {out.stderr.strip()}")
        return out.stdout

    def start(self, command: list[str], env: dict[str, str] | None = None) -> None:
        """Run ``command`` in the session, with ``env`` added to its environment (stack.py sets
        MOLEHILL_CAPTURE_FILE for its own children only)."""
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.server = subprocess.Popen(
            self._cmd("-D"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=pinned_preexec(self.cpus),
        )
        _register(self.server)
        shell = " ".join(shlex.quote(c) for c in command)
        new_session = (
            "new-session",
            "-d",
            "-s",
            "bench",
            "-x",
            str(WIDTH),
            "-y",
            str(HEIGHT),
            "-c",
            str(HERE.parent),
            *(f"-e{name}={value}" for name, value in (env or {}).items()),
            shell,
        )
        # Wait for our server's socket: a new-session sent earlier would start a daemon
        # server of its own (one that would not die with run.py).
        socket = (
            Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}" / (self.socket)
        )
        deadline = time.monotonic() + 5
        while not socket.is_socket():
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise StackError(f"tmux -D did not create its socket {socket}")
            time.sleep(0.02)
        self.tmux_run(*new_session)
        self.tmux_run("set-option", "-t", "bench", "remain-on-exit", "on")
        pid, server, self.socket_path = self.tmux_run(
            "display", "-p", "-t", "bench", "#{pane_pid} #{pid} #{socket_path}"
        ).split(maxsplit=2)
        self.pane_pid = int(pid)
        self.socket_path = self.socket_path.strip()
        if int(server) != self.server.pid:
            raise StackError(
                f"the session runs in tmux server {server}, not ours ({self.server.pid})"
            )

    def capture(self) -> str:
        started = time.perf_counter()
        out = subprocess.run(
            self._cmd("capture-pane", "-p", "-t", "bench"),
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        self.capture_s.append(time.perf_counter() - started)
        return out

    def send_key(self, key: str) -> None:
        subprocess.run(self._cmd("send-keys", "-t", "bench", key), check=True, timeout=10)

    def pane_dead(self) -> bool:
        return (
            self.tmux_run("display", "-p", "-t", "bench", "#{pane_dead}", check=False).strip()
            == "1"
        )

    def stop(self) -> None:
        if self.pane_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pane_pid, signal.SIGTERM)
            deadline = time.monotonic() + 3
            while _alive(self.pane_pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pane_pid, signal.SIGKILL)
        if self.server is not None:
            self.tmux_run("kill-server", check=False)
            _stop([self.server], grace=2.0)
        if self.socket_path:
            with contextlib.suppress(OSError):
                os.unlink(self.socket_path)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return status not in ("Z", "X")


if __name__ == "__main__":
    if sys.argv[1:2] == ["exec"]:
        sys.exit(exec_pinned(sys.argv[2:]))
    print("usage: python benchmarks/terminal.py exec --cpus 0 -- CMD...", file=sys.stderr)
    sys.exit(2)
