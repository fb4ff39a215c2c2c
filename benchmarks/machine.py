"""What the benchmark ran on, and which cores each side gets.

Pinning: with at least two usable cores, the processes under test (local app, relay, agent) share
the first core and the load generator gets the second, for the direct runs and the tunnel runs
alike. The tunnel then has exactly one core, like a small VPS, and the load generator never
steals from it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Pinning:
    tunnel: set[int] | None  # cores for app, relay, agent (None: not pinned)
    load: set[int] | None  # cores for the load generator
    reason: str = ""  # why there is no pinning

    @property
    def enabled(self) -> bool:
        return self.tunnel is not None

    def describe(self) -> str:
        if not self.enabled:
            return f"none ({self.reason})"
        return (
            f"app+relay+agent on CPU {_cpus(self.tunnel)}, load generator on CPU "
            f"{_cpus(self.load)} (sched_setaffinity)"
        )

    def to_json(self) -> dict:
        return {
            "enabled": self.enabled,
            "tunnel_cpus": sorted(self.tunnel) if self.tunnel else None,
            "load_cpus": sorted(self.load) if self.load else None,
            "method": "sched_setaffinity" if self.enabled else None,
            "description": self.describe(),
        }


def _cpus(cpus: set[int] | None) -> str:
    return ",".join(str(c) for c in sorted(cpus or ()))


def usable_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def plan_pinning(enabled: bool = True) -> Pinning:
    if not enabled:
        return Pinning(None, None, "disabled with --no-pin")
    if not hasattr(os, "sched_setaffinity"):
        return Pinning(None, None, f"sched_setaffinity is not available on {sys.platform}")
    cpus = usable_cpus()
    if len(cpus) < 2:
        return Pinning(None, None, "only one usable core")
    return Pinning({cpus[0]}, {cpus[1]})


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The checked-out commit (read-only: ``git rev-parse``), or None outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def machine_info() -> dict:
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "uvloop": _version("uvloop"),
        "httptools": _version("httptools"),
        "websockets": _version("websockets"),
        "msgpack": _version("msgpack"),
        "os": f"{platform.system()} {platform.release()}",
    }


def molehill_info(command: list[str]) -> dict:
    return {"version": _version("molehill"), "commit": git_commit(), "build": build(command)}


def build(command: list[str]) -> str:
    """What ``molehill --version`` says of its data path: compiled or pure Python."""
    try:
        out = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    said = out.stdout.strip()
    return said.partition("(data path: ")[2].rstrip(")") or "unknown"
