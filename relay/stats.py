"""Rolling figures for one tunnel: latency percentiles, request rate, errors and bytes.

Durations go into a log-scale histogram per second (5% wide buckets), so the percentiles over the
last minute cost the same at 10 or 10,000 requests per second and memory stays fixed.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

from relay.events import RequestRecord

_BASE_MS = 0.01  # the first bucket starts at 10 microseconds
_RATIO = 1.05
_LOG_RATIO = math.log(_RATIO)
_BUCKETS = 400  # up to about 10 minutes


def _bucket(ms: float) -> int:
    if ms <= _BASE_MS:
        return 0
    return min(int(math.log(ms / _BASE_MS) / _LOG_RATIO), _BUCKETS - 1)


def _bucket_value(index: int) -> float:
    """The middle of a bucket, in ms."""
    return _BASE_MS * _RATIO ** (index + 0.5)


class _Second:
    __slots__ = ("bytes_in", "bytes_out", "count", "errors", "hist", "stamp")

    def __init__(self, stamp: int) -> None:
        self.stamp = stamp
        self.count = 0
        self.errors = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.hist: dict[int, int] = {}


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """What the latency pane shows."""

    p50: float | None
    p90: float | None
    p99: float | None
    rps: float  # over the last 10 seconds
    error_rate: float  # share of 5xx and failed exchanges over the window
    requests: int  # in the window
    total_requests: int
    bytes_in: int  # since start
    bytes_out: int
    recent_ms: tuple[float, ...]  # the latest durations, oldest first, for a sparkline


class TunnelStats:
    """Feed it records; ask it for a snapshot."""

    def __init__(self, window: int = 60, recent: int = 120) -> None:
        self.window = window
        self.seconds: deque[_Second] = deque()
        self.recent: deque[float] = deque(maxlen=recent)
        self.total_requests = 0
        self.bytes_in = 0
        self.bytes_out = 0

    def add(self, record: RequestRecord, now: float | None = None) -> None:
        stamp = int(now if now is not None else time.monotonic())
        seconds = self.seconds
        if not seconds or seconds[-1].stamp != stamp:
            seconds.append(_Second(stamp))
            while seconds[0].stamp <= stamp - self.window:
                seconds.popleft()
        sec = seconds[-1]
        sec.count += 1
        if record.status == 0 or record.status >= 500:
            sec.errors += 1
        sec.bytes_in += record.bytes_in
        sec.bytes_out += record.bytes_out
        index = _bucket(record.duration_ms)
        sec.hist[index] = sec.hist.get(index, 0) + 1
        self.recent.append(record.duration_ms)
        self.total_requests += 1
        self.bytes_in += record.bytes_in
        self.bytes_out += record.bytes_out

    def snapshot(self, now: float | None = None) -> StatsSnapshot:
        stamp = int(now if now is not None else time.monotonic())
        live = [s for s in self.seconds if s.stamp > stamp - self.window]
        merged: dict[int, int] = {}
        count = errors = 0
        for sec in live:
            count += sec.count
            errors += sec.errors
            for index, n in sec.hist.items():
                merged[index] = merged.get(index, 0) + n
        last10 = sum(s.count for s in live if s.stamp > stamp - 10)
        span = min(10, max(1, stamp - live[0].stamp + 1)) if live else 1
        return StatsSnapshot(
            p50=_percentile(merged, count, 0.50),
            p90=_percentile(merged, count, 0.90),
            p99=_percentile(merged, count, 0.99),
            rps=last10 / span,
            error_rate=errors / count if count else 0.0,
            requests=count,
            total_requests=self.total_requests,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            recent_ms=tuple(self.recent),
        )


def _percentile(hist: dict[int, int], count: int, q: float) -> float | None:
    if not count:
        return None
    rank = max(1, math.ceil(q * count))
    seen = 0
    for index in sorted(hist):
        seen += hist[index]
        if seen >= rank:
            return _bucket_value(index)
    return None  # pragma: no cover - unreachable when count matches hist
