"""Memory of the processes under test, read from /proc/PID/status (Linux; elsewhere: nothing).

``rss_kib(pid)`` is the resident set now (VmRSS), ``hwm_kib(pid)`` its all-time peak (VmHWM).
VmHWM only ever grows, so it cannot tell the peak of one measurement once an earlier one went
higher; ``RssSampler`` therefore reads VmRSS of several processes every ``interval`` seconds on a
thread and keeps each one's peak (and its last value) for the span between ``start()`` and
``stop()``. Peaks shorter than the interval (10 ms by default) can be missed; VmHWM is reported
beside them as a cross-check.

RSS counts what the process touched, not what Python still uses: freed objects stay in
pymalloc's arenas and the C allocator's heap, so RSS after a burst rarely drops back. "Growth"
below is always ``peak during - value just before`` the thing measured.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

KIB = 1024


def _status_field(pid: int, field: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field):
            return int(line.split()[1])  # "VmRSS:   12345 kB"
    return None


def rss_kib(pid: int) -> int | None:
    """Resident set size now, in KiB (None when the process is gone or /proc is missing)."""
    return _status_field(pid, "VmRSS:")


def hwm_kib(pid: int) -> int | None:
    """The process's peak resident set size so far, in KiB."""
    return _status_field(pid, "VmHWM:")


def snapshot(pids: dict[str, int]) -> dict[str, int | None]:
    return {role: rss_kib(pid) for role, pid in pids.items()}


class RssSampler:
    """Polls VmRSS of ``pids`` (role -> pid) on a thread; ``stop()`` returns the peaks."""

    def __init__(self, pids: dict[str, int], interval: float = 0.01) -> None:
        self.pids = dict(pids)
        self.interval = interval
        self.peak: dict[str, int] = {}
        self.last: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def start(self) -> RssSampler:
        self._sample()
        self._thread.start()
        return self

    def _sample(self) -> None:
        for role, pid in self.pids.items():
            value = rss_kib(pid)
            if value is None:
                continue
            self.last[role] = value
            if value > self.peak.get(role, 0):
                self.peak[role] = value
        self.samples += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> dict[str, int]:
        """Stop polling; role -> peak VmRSS in KiB over the sampled span."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._sample()
        return dict(self.peak)


def wait_settled(pids: dict[str, int], seconds: float = 0.3, limit: float = 3.0) -> dict[str, int]:
    """RSS once it stops changing for ``seconds`` (or after ``limit``): an idle baseline."""
    deadline = time.monotonic() + limit
    before = snapshot(pids)
    while True:
        time.sleep(seconds)
        now = snapshot(pids)
        if now == before or time.monotonic() > deadline:
            return {role: value or 0 for role, value in now.items()}
        before = now


def mib(kib: float) -> float:
    return kib / KIB
