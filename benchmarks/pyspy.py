"""Profiling the relay and the agent under load with py-spy (``--profile DIR`` in run.py).

py-spy samples the running processes from outside (no code change, little overhead). For each
process it writes ``DIR/ROLE.txt`` in collapsed-stack form (``py-spy record --format raw
--function``: one ``frame;frame;...;leaf COUNT`` line per distinct stack, frames named
``function (file:first line of the function)``); flamegraph.pl or speedscope.app draw it.

``top_own`` sums samples by the leaf frame, the "own time" of a function: its own Python code
and the C it calls directly. Without ``--native``, a syscall made by uvloop on behalf of a Python
call (``transport.write`` -> send) counts for the Python function that called it, and the work of
uvloop's loop itself (epoll, reading sockets, dispatching callbacks) counts for the frame that
runs the loop (``Runner.run``). With ``--native`` (much slower) C frames appear: libc ``read``,
``write``, ``epoll_pwait`` and so on.

Samples taken while the process sleeps (idle in epoll) are not recorded; ``active`` =
samples / (rate x seconds) is the share of the time the process was running or waiting for a
core -- with app, relay and agent sharing one core it is more than their CPU share.

``threads=True`` (the dashboard: a UI thread and the tunnels' thread) adds ``--threads``: each
stack then starts with a ``thread (0x...)`` frame, ``by_thread`` sums samples per thread, and
``top`` stays by leaf function over all threads (``active`` can then exceed 100%). With
``gil=True`` (``--gil``) only the thread holding the GIL is sampled: the shares then say which
thread's Python ran, and threads waiting in select/epoll/locks drop out.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


def find_pyspy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass
class Profile:
    role: str
    path: Path
    samples: int
    expected: int  # rate x duration: what a fully busy process would give
    top: list[tuple[str, int]]  # (frame, own samples), most first
    run: dict = field(default_factory=dict)  # the load while profiling (run.py fills it in)
    by_thread: list[tuple[str, int]] = field(default_factory=list)  # (thread, samples)

    @property
    def active(self) -> float:
        return self.samples / self.expected if self.expected else 0.0

    def to_json(self) -> dict:
        return {
            "role": self.role,
            "file": str(self.path),
            "samples": self.samples,
            "active": round(self.active, 3),
            "by_thread": [
                {"thread": t, "samples": n, "percent": round(100 * n / self.samples, 1)}
                for t, n in self.by_thread
            ],
            "top_own": [
                {"frame": frame, "samples": n, "percent": round(100 * n / self.samples, 1)}
                for frame, n in self.top
            ],
        }

    def text(self, limit: int = 15) -> str:
        lines = [
            f"{self.role}: {self.samples} samples, active {self.active:.0%} of the time; "
            "own time by function, % of the process's samples"
        ]
        for thread, n in self.by_thread:
            lines.append(f"  {100 * n / self.samples:5.1f}%  of the samples in {thread}")
        for frame, n in self.top[:limit]:
            lines.append(f"  {100 * n / self.samples:5.1f}%  {frame}")
        return "\n".join(lines)


def collapsed_own(text: str) -> tuple[int, Counter[str]]:
    """(total samples, samples per leaf frame) from collapsed stacks."""
    total, own, _ = collapsed(text)
    return total, own


def collapsed(text: str) -> tuple[int, Counter[str], Counter[str]]:
    """(total samples, samples per leaf frame, samples per first frame) from collapsed stacks;
    with ``py-spy --threads`` the first frame names the thread."""
    own: Counter[str] = Counter()
    first: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        own[stack.rsplit(";", 1)[-1]] += n
        first[stack.split(";", 1)[0]] += n
    return total, own, first


class Recorder:
    """Runs ``py-spy record`` on several pids at once for ``seconds``."""

    def __init__(
        self,
        pyspy: str,
        outdir: Path,
        rate: int = 250,
        native: bool = False,
        threads: bool = False,
        gil: bool = False,
    ) -> None:
        self.pyspy = pyspy
        self.outdir = outdir
        self.rate = rate
        self.native = native
        self.threads = threads
        self.gil = gil
        self.procs: dict[str, tuple[subprocess.Popen, Path]] = {}
        self.seconds = 0

    def start(self, pids: dict[str, int], seconds: int, cpus: set[int] | None) -> None:
        from stack import _register, pinned_preexec

        self.outdir.mkdir(parents=True, exist_ok=True)
        self.seconds = seconds
        for role, pid in pids.items():
            out = self.outdir / f"{role}.txt"
            cmd = [
                self.pyspy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(seconds),
                "--rate",
                str(self.rate),
                "--format",
                "raw",
                "--function",
                "-o",
                str(out),
            ]
            if self.native:
                cmd.append("--native")
            if self.threads:
                cmd.append("--threads")
            if self.gil:
                cmd.append("--gil")
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                preexec_fn=pinned_preexec(cpus),
            )
            _register(proc)
            self.procs[role] = (proc, out)

    def finish(self) -> list[Profile]:
        from stack import _stop

        profiles = []
        for role, (proc, out) in self.procs.items():
            try:
                log, _ = proc.communicate(timeout=self.seconds + 30)
            finally:
                _stop([proc], grace=1.0)
            if proc.returncode != 0 or not out.exists():
                raise RuntimeError(f"py-spy failed for the {role}: {log.strip()[-1000:]}")
            total, own, first = collapsed(out.read_text())
            profile = Profile(role, out, total, self.rate * self.seconds, own.most_common(40))
            if self.threads:
                profile.by_thread = first.most_common()
            profiles.append(profile)
        return profiles
