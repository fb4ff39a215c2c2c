"""Rolling figures for one tunnel: latency percentiles (whole, the local app's, the tunnel's),
request rate, 4xx and 5xx, bytes, p50/p99 per second for a time chart, and whether the local
app is down.

Durations go into a log-scale histogram per second (5% wide buckets), so the percentiles over the
last minute cost the same at 10 or 10,000 requests per second and memory stays fixed: the last
``window`` seconds keep their histograms, older seconds only their p50 and p99 (``history``
seconds of them, 10 minutes by default).
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
_LAST = _BUCKETS - 1
_PER_BASE = 1 / _BASE_MS
_PER_STEP = 1 / _LOG_RATIO
_log = math.log


def _bucket(ms: float) -> int:
    if ms <= _BASE_MS:
        return 0
    return min(int(math.log(ms / _BASE_MS) / _LOG_RATIO), _BUCKETS - 1)


def _bucket_value(index: int) -> float:
    """The middle of a bucket, in ms."""
    return _BASE_MS * _RATIO ** (index + 0.5)


class _Second:
    __slots__ = (
        "app_hist",
        "bytes_in",
        "bytes_out",
        "client_errors",
        "count",
        "failed",
        "hist",
        "overhead_hist",
        "server_errors",
        "stamp",
    )

    def __init__(self, stamp: int) -> None:
        self.stamp = stamp
        self.count = 0
        self.client_errors = 0  # 4xx
        self.server_errors = 0  # 5xx
        self.failed = 0  # no response at all (status 0)
        self.bytes_in = 0
        self.bytes_out = 0
        self.hist: dict[int, int] = {}
        self.app_hist: dict[int, int] = {}
        self.overhead_hist: dict[int, int] = {}


@dataclass(frozen=True, slots=True)
class AppDown:
    """The local app is failing: since when, how, and what it cost (cleared by a response)."""

    failure: str  # the sentence of the latest failure, naming the local address
    kind: str  # refused, timeout, reset, closed, dns, unreachable
    since: float  # wall clock of the first failed request of this run
    requests: int  # failed requests since then
    got_502: int  # of which the visitor was shown a 502

    def describe(self, clock: str) -> str:
        """One line: ``clock`` is ``since`` as the caller formats time."""
        what = "got 502" if self.got_502 == self.requests else "failed"
        plural = "request" if self.requests == 1 else "requests"
        return f"{self.failure} since {clock} — {self.requests} {plural} {what}"


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
    app_p50: float | None = None  # the local app's time (request written -> last byte)
    app_p99: float | None = None
    overhead_p50: float | None = None  # what the agent added before the app could start
    overhead_p99: float | None = None
    client_error_rate: float = 0.0  # share of 4xx over the window
    server_error_rate: float = 0.0  # share of 5xx
    failed_rate: float = 0.0  # share of exchanges that got no response
    # p50 and p99 of each second, oldest first, the latest last; None: no request that second
    per_second: tuple[tuple[float, float] | None, ...] = ()
    app_down: AppDown | None = None


class TunnelStats:
    """Feed it records; ask it for a snapshot."""

    def __init__(self, window: int = 60, history: int = 600) -> None:
        self.window = window
        self.history_seconds = history
        self.seconds: deque[_Second] = deque()
        self.history: deque[tuple[int, float, float]] = deque(maxlen=history)
        self.total_requests = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.app_down: AppDown | None = None

    def add(self, record: RequestRecord, now: float | None = None) -> None:
        stamp = int(now if now is not None else time.monotonic())
        seconds = self.seconds
        if not seconds or seconds[-1].stamp != stamp:
            if seconds:
                self._summarise(seconds[-1])
            seconds.append(_Second(stamp))
            while seconds[0].stamp <= stamp - self.window:
                seconds.popleft()
        sec = seconds[-1]
        sec.count += 1
        status = record.status
        if status >= 500:
            sec.server_errors += 1
        elif status >= 400:
            sec.client_errors += 1
        elif status == 0:
            sec.failed += 1
        sec.bytes_in += record.bytes_in
        sec.bytes_out += record.bytes_out
        # _bucket() inlined: this runs once per request on the tunnels' thread.
        ms = record.duration_ms
        index = min(int(_log(ms * _PER_BASE) * _PER_STEP), _LAST) if ms > _BASE_MS else 0
        hist = sec.hist
        hist[index] = hist.get(index, 0) + 1
        app = record.app_ms
        if app is not None:
            index = min(int(_log(app * _PER_BASE) * _PER_STEP), _LAST) if app > _BASE_MS else 0
            hist = sec.app_hist
            hist[index] = hist.get(index, 0) + 1
            ms = record.overhead_ms or 0.0
            index = min(int(_log(ms * _PER_BASE) * _PER_STEP), _LAST) if ms > _BASE_MS else 0
            hist = sec.overhead_hist
            hist[index] = hist.get(index, 0) + 1
        self.total_requests += 1
        self.bytes_in += record.bytes_in
        self.bytes_out += record.bytes_out
        if record.failure:
            self._failed(record)
        elif status and self.app_down is not None:
            self.app_down = None  # this one reached the app: it is back

    def _failed(self, record: RequestRecord) -> None:
        down = self.app_down
        got_502 = 1 if record.status == 502 else 0
        if down is None or down.kind != record.failure_kind:
            self.app_down = AppDown(record.failure, record.failure_kind, record.time, 1, got_502)
        else:
            self.app_down = AppDown(
                record.failure, down.kind, down.since, down.requests + 1, down.got_502 + got_502
            )

    def _summarise(self, sec: _Second) -> None:
        """Keep a finished second's p50 and p99 for the chart once its histogram is gone."""
        p50 = _percentile(sec.hist, sec.count, 0.50)
        p99 = _percentile(sec.hist, sec.count, 0.99)
        if p50 is not None and p99 is not None:
            self.history.append((sec.stamp, p50, p99))

    def snapshot(self, now: float | None = None) -> StatsSnapshot:
        stamp = int(now if now is not None else time.monotonic())
        live = [s for s in self.seconds if s.stamp > stamp - self.window]
        merged: dict[int, int] = {}
        app: dict[int, int] = {}
        overhead: dict[int, int] = {}
        count = client_errors = server_errors = failed = 0
        for sec in live:
            count += sec.count
            client_errors += sec.client_errors
            server_errors += sec.server_errors
            failed += sec.failed
            _merge(merged, sec.hist)
            _merge(app, sec.app_hist)
            _merge(overhead, sec.overhead_hist)
        app_count = sum(app.values())
        last10 = sum(s.count for s in live if s.stamp > stamp - 10)
        span = min(10, max(1, stamp - live[0].stamp + 1)) if live else 1
        return StatsSnapshot(
            p50=_percentile(merged, count, 0.50),
            p90=_percentile(merged, count, 0.90),
            p99=_percentile(merged, count, 0.99),
            rps=last10 / span,
            error_rate=(server_errors + failed) / count if count else 0.0,
            requests=count,
            total_requests=self.total_requests,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            app_p50=_percentile(app, app_count, 0.50),
            app_p99=_percentile(app, app_count, 0.99),
            overhead_p50=_percentile(overhead, app_count, 0.50),
            overhead_p99=_percentile(overhead, app_count, 0.99),
            client_error_rate=client_errors / count if count else 0.0,
            server_error_rate=server_errors / count if count else 0.0,
            failed_rate=failed / count if count else 0.0,
            per_second=self._per_second(stamp),
            app_down=self.app_down,
        )

    def _per_second(self, stamp: int) -> tuple[tuple[float, float] | None, ...]:
        """p50/p99 of each of the last ``history`` seconds up to ``stamp``, None when idle."""
        first = stamp - self.history_seconds + 1
        slots: list[tuple[float, float] | None] = [None] * self.history_seconds
        for when, p50, p99 in self.history:
            if first <= when <= stamp:
                slots[when - first] = (p50, p99)
        current = self.seconds[-1] if self.seconds else None
        if current is not None and first <= current.stamp <= stamp:
            low = _percentile(current.hist, current.count, 0.50)
            high = _percentile(current.hist, current.count, 0.99)
            if low is not None and high is not None:
                slots[current.stamp - first] = (low, high)
        return tuple(slots)


def _merge(into: dict[int, int], hist: dict[int, int]) -> None:
    for index, n in hist.items():
        into[index] = into.get(index, 0) + n


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
