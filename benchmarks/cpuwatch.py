"""Who used the CPU during a measurement: our processes, the kernel, and anything else.

Read from /proc (Linux only; elsewhere the meter reports nothing). For each measurement it gives
CPU seconds for:

- each process under test (``app``, ``relay``, ``agent``), with its descendants (the
  agent's capture spooler and store processes count as the agent's);
- ``load``: the load generator and run.py itself (getrusage of this process and of the children
  it reaped during the run);
- ``kernel``: kernel threads (kworker, ksoftirqd, ...) and interrupt time charged to no process
  (softirq work done while a core was idle: loopback packets are processed in softirq).
  Loopback traffic makes these busy: on the machine these benchmarks were written on, a
  kworker used ~15% of a core under load;
- ``others``: every other process, including short-lived ones that came and went during the
  run (the machine's busy time not accounted for above). A busy neighbour on a shared machine
  shows up here, and run.py notes it next to the numbers it may have disturbed.

Resolution: one clock tick (usually 10 ms).
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PF_KTHREAD = 0x00200000


def _stat_fields(pid: int | str) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rpartition(")")[2].split()  # fields 3.. of stat(5); the name may hold spaces


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process, in seconds (None if gone or unknown)."""
    fields = _stat_fields(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / _TICK


def all_processes() -> dict[int, tuple[bool, float, int]]:
    """pid -> (is a kernel thread, CPU seconds, parent pid) for every live process."""
    out = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    for entry in entries:
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields is not None:
                kthread = bool(int(fields[6]) & _PF_KTHREAD)
                seconds = (int(fields[11]) + int(fields[12])) / _TICK
                out[int(entry)] = (kthread, seconds, int(fields[1]))
    return out


def machine_seconds() -> tuple[float, float] | None:
    """(busy, in interrupts) CPU seconds of the whole machine (all cores) since boot."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0]
    except OSError:
        return None
    values = [int(v) for v in first.split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    guest = sum(values[8:10]) if len(values) > 9 else 0  # already counted in user/nice
    irq = sum(values[5:7]) if len(values) > 6 else 0  # irq + softirq
    return (sum(values) - idle - guest) / _TICK, irq / _TICK


def _self_and_reaped() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class _Snapshot:
    def __init__(self) -> None:
        self.wall = time.monotonic()
        self.machine = machine_seconds()
        self.procs = all_processes()
        self.load = _self_and_reaped()


def _ancestor_role(
    roles: dict[int, str], procs: dict[int, tuple[bool, float, int]], parent: int
) -> str | None:
    """The role of the nearest ancestor under test (a child's child counts as its grandparent's)."""
    for _ in range(8):
        role = roles.get(parent)
        if role is not None or parent not in procs:
            return role
        parent = procs[parent][2]
    return None


class CpuMeter:
    """``start()`` before a measurement, ``stop()`` after: a dict of CPU seconds by role."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.roles = {pid: role for role, pid in pids.items()}
        self._begin: _Snapshot | None = None

    def start(self) -> None:
        self._begin = _Snapshot()

    def stop(self) -> dict[str, float]:
        end, begin = _Snapshot(), self._begin
        if begin is None or begin.machine is None or end.machine is None:
            return {}
        out = {role: 0.0 for role in self.roles.values()}
        out.update(load=end.load - begin.load, kernel=0.0, others=0.0)
        me = os.getpid()
        children: dict[str, float] = {}  # of it, by the roles' descendants (agent: its writers)
        for pid, (kthread, seconds, parent) in end.procs.items():
            if pid == me:
                continue  # in "load"
            before = begin.procs.get(pid)
            used = seconds - (before[1] if before is not None else 0.0)
            role = self.roles.get(pid)
            if role is None:
                role = _ancestor_role(self.roles, end.procs, parent)
                if role is not None:
                    children[role] = children.get(role, 0.0) + used
            role = role or ("kernel" if kthread else "others")
            out[role] += used
        # Busy time no live process was charged with: interrupts that arrived while a core was
        # idle (loopback packets are processed in softirq) are kernel work; the rest is
        # processes that came and went during the run.
        rest = max(0.0, (end.machine[0] - begin.machine[0]) - sum(out.values()))
        interrupts = min(rest, end.machine[1] - begin.machine[1])
        out["kernel"] += interrupts
        out["others"] += rest - interrupts
        out["wall"] = end.wall - begin.wall
        # Apart, after the sums above: already counted in their role.
        out.update({f"{role}_children": used for role, used in children.items()})
        return {k: round(v, 3) for k, v in out.items()}


def wait_quiet(pids: dict[str, int], share: float, limit: float, step: float = 0.5) -> float:
    """Wait until these processes, their children included, use less than ``share`` of a core
    together over ``step`` s (at most ``limit`` s); return the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        meter = CpuMeter(pids)
        meter.start()
        time.sleep(step)
        cpu = meter.stop()
        if not cpu.get("wall") or sum(cpu.get(role, 0.0) for role in pids) / cpu["wall"] < share:
            break
    return time.monotonic() - started
