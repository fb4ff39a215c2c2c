"""Starting and stopping the processes under test: local app, relay and agent.

Each runs as a real subprocess, the way a user runs it (``molehill relay ...``,
``molehill http PORT ...``), on 127.0.0.1 with ports chosen by the OS (port 0; the actual ports
are read from each process's first output lines, so there is no race for free ports). Output
goes to log files in a temporary directory: the agent logs one line per request, and writing
that to a real file is part of what is measured.

Every process started here (and every load generator, through ``track``) is registered and
killed by ``kill_all`` -- on success, error, Ctrl+C or SIGTERM (run.py arranges that). On Linux
each child also gets PR_SET_PDEATHSIG, so even a SIGKILLed run.py leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
TUNNEL_NAME = "bench"

_children: list[subprocess.Popen] = []


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def raise_fd_limit() -> int:
    """Lift this process's open-files soft limit to the hard limit (1,000 streams need ~3,000
    sockets across app, relay and agent); returns the new soft limit."""
    try:
        import resource
    except ImportError:  # not on Unix
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):
        return soft
    return wanted


def pinned_preexec(cpus: set[int] | None) -> Callable[[], None]:
    """A preexec_fn: pin the child to ``cpus`` (if any), have it die with its parent, and lift
    its open-files limit to the hard limit."""

    def preexec() -> None:
        if cpus and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cpus)
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
        raise_fd_limit()

    return preexec


def _register(proc: subprocess.Popen) -> None:
    if proc not in _children:
        _children.append(proc)


def _stop(procs: list[subprocess.Popen], grace: float = 3.0) -> None:
    """SIGTERM each process (by pid), wait up to ``grace`` seconds in all, then SIGKILL."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    for proc in procs:
        with contextlib.suppress(ValueError):
            _children.remove(proc)


@contextlib.contextmanager
def track(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """Register a short-lived child (a load generator); it is dead when the block exits."""
    _register(proc)
    try:
        yield proc
    finally:
        _stop([proc], grace=1.0)


def run_json_client(cmd: list[str], cpus: set[int] | None, timeout: float, what: str) -> dict:
    """Run a pinned client script to its end; return the JSON object it prints."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=pinned_preexec(cpus),
    )
    with track(proc):
        out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {err.strip()[-2000:]}")
    return json.loads(out)


def kill_all() -> None:
    """Stop every child this process started that is still registered."""
    _stop(list(reversed(_children)))


def molehill_command(explicit: str | None = None) -> list[str]:
    """How to run `molehill`: --molehill, the venv's script next to this Python, PATH, -m."""
    if explicit:
        return explicit.split()
    beside = Path(sys.executable).parent / "molehill"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("molehill")
    if found:
        return [found]
    return [sys.executable, "-m", "tui.cli"]


class StackError(RuntimeError):
    """The processes under test could not be started or the tunnel never answered."""


# -- HTTP probe ------------------------------------------------------------------------------------


def http_get(
    port: int, host_header: str, path: str = "/", timeout: float = 2.0
) -> tuple[int, bytes]:
    """One ``GET`` with ``Connection: close`` to 127.0.0.1:port; (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n".encode()
        )
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        status = 0
    return status, body


def child_pids(parent: int) -> list[int]:
    """The live processes whose parent is ``parent`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == parent:
                found.append(int(entry))
    return found


# -- the stack -------------------------------------------------------------------------------------


class Stack:
    """Local app + relay + agent, pinned to ``cpus``; use as a context manager."""

    def __init__(
        self,
        logdir: Path,
        cpus: set[int] | None = None,
        molehill: list[str] | None = None,
        python: str = sys.executable,
        name: str = TUNNEL_NAME,
    ) -> None:
        self.logdir = logdir
        self.cpus = cpus
        self.molehill = molehill or molehill_command()
        self.python = python
        self.name = name
        self.procs: dict[str, subprocess.Popen] = {}
        self.app_port = 0
        self.http_port = 0
        self.agents_port = 0

    # -- targets --

    @property
    def direct_host(self) -> str:
        return f"127.0.0.1:{self.app_port}"

    @property
    def tunnel_host(self) -> str:
        return f"{self.name}.localhost:{self.http_port}"

    def pids(self) -> dict[str, int]:
        return {role: proc.pid for role, proc in self.procs.items()}

    def log_path(self, role: str) -> Path:
        return self.logdir / f"{role}.log"

    # -- processes --

    def _spawn(self, role: str, cmd: list[str]) -> subprocess.Popen:
        self.logdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path(role), "wb")  # noqa: SIM115 -- the child owns it
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl+C reaches run.py only; it stops them in order
                preexec_fn=pinned_preexec(self.cpus),
                cwd=str(HERE.parent),
                # A fresh capture store per run: never the user's own, and the same start each time.
                env={"MOLEHILL_CAPTURE_FILE": str(self.logdir / "captures.sqlite3"), **os.environ},
            )
        finally:
            log.close()
        _register(proc)
        self.procs[role] = proc
        return proc

    def _wait_for_line(self, role: str, pattern: str, timeout: float) -> re.Match[str]:
        proc = self.procs[role]
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.MULTILINE)
        while True:
            text = self.log_path(role).read_text(errors="replace")
            match = regex.search(text)
            if match:
                return match
            if proc.poll() is not None:
                raise StackError(
                    f"the {role} exited with code {proc.returncode} before it was ready\n"
                    + self.tail(role)
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"the {role} did not start within {timeout:.0f}s\n" + self.tail(role)
                )
            time.sleep(0.02)

    def _port(self, role: str, pattern: str, timeout: float) -> int:
        return int(self._wait_for_line(role, pattern, timeout)[1])

    def tail(self, role: str, lines: int = 15) -> str:
        try:
            text = self.log_path(role).read_text(errors="replace")
        except OSError:
            return f"  ({role} log missing)"
        last = text.splitlines()[-lines:] or ["(empty)"]
        return f"--- last lines of the {role}'s output ({self.log_path(role)}):\n" + "\n".join(
            "  " + line for line in last
        )

    def start(self, timeout: float = 20.0) -> None:
        """Start app, relay and agent; return when a request through the tunnel succeeds."""
        started = time.monotonic()
        self.start_app(timeout)
        self.start_relay(timeout)
        self.start_agent()
        self.wait_tunnel(max(1.0, timeout - (time.monotonic() - started)))
        self.place_writer()

    def place_writer(self) -> None:
        """``BENCH_WRITER_CPUS=1``: move the agent's capture processes (its descendants) to those
        CPUs. By default it stays where it was born: on the tunnel's core, with the agent."""
        cpus = os.environ.get("BENCH_WRITER_CPUS", "")
        agent = self.procs.get("agent")
        if not cpus or agent is None or not hasattr(os, "sched_setaffinity"):
            return
        wanted = {int(c) for c in cpus.split(",")}
        family = child_pids(agent.pid)
        while family:  # the spooler, then the store process it started
            pid = family.pop()
            os.sched_setaffinity(pid, wanted)
            family += child_pids(pid)

    def start_app(self, timeout: float = 20.0) -> None:
        self._spawn("app", [self.python, str(HERE / "localapp.py"), "0"])
        self.app_port = self._port("app", r"listening on 127\.0\.0\.1:(\d+)", timeout)

    def start_relay(self, timeout: float = 20.0) -> None:
        self._spawn(
            "relay",
            [*self.molehill, "relay", "--http", "127.0.0.1:0", "--agents", "127.0.0.1:0"],
        )
        self.http_port = self._port("relay", r"public HTTP\s+http://[^:]+:(\d+)", timeout)
        self.agents_port = self._port("relay", r"agents\s+ws://[^:]+:(\d+)", timeout)

    def start_agent(self) -> None:
        self._spawn(
            "agent",
            [
                *self.molehill,
                "http",
                str(self.app_port),
                "--relay",
                self.agents_url,
                "--subdomain",
                self.name,
                # Extra agent options for an A/B in one sitting, e.g. BENCH_AGENT_ARGS=--no-capture.
                *shlex.split(os.environ.get("BENCH_AGENT_ARGS", "")),
            ],
        )

    @property
    def agents_url(self) -> str:
        return f"ws://127.0.0.1:{self.agents_port}"

    def wait_tunnel(self, timeout: float) -> None:
        from localapp import SMALL_BODY

        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            for role, proc in self.procs.items():
                if proc.poll() is not None:
                    raise StackError(
                        f"the {role} exited with code {proc.returncode} before the tunnel came "
                        f"up\n{self.tail('relay')}\n{self.tail('agent')}"
                    )
            try:
                status, body = http_get(self.http_port, self.tunnel_host, "/", timeout=1.0)
                if status == 200 and body == SMALL_BODY:
                    return
                last = f"HTTP {status}: {body[:160].decode('utf-8', 'replace').strip()}"
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise StackError(
                    f"the tunnel never came up: http://{self.tunnel_host}/ did not return the "
                    f"local app's page within {timeout:.0f}s (last answer: {last})\n"
                    f"{self.tail('relay')}\n{self.tail('agent')}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        # The agent first (it says goodbye to the relay), then the relay, then the app.
        order = [self.procs[r] for r in ("agent", "relay", "app") if r in self.procs]
        _stop(order)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
