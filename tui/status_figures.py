"""The status block's figures: for HTTP, requests (totals, rates over 1 and 5 minutes, p50 and
p90); for TCP, connections (total, open) and live throughput each way."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from relay.agent.tcp import TcpLedger
from relay.events import RequestRecord
from relay.stats import TunnelStats

WINDOW = 300  # seconds: the longest rate (rt5) and the percentiles cover five minutes


@dataclass(frozen=True, slots=True)
class Figures:
    total: int
    rate_1m: float  # requests per second, averaged over the last minute
    rate_5m: float
    p50: float | None  # ms, over the last five minutes
    p90: float | None


class RequestFigures:
    """Feed it every request record; ask for the figures at any time."""

    def __init__(self) -> None:
        # stats gives the percentiles; rates over minutes it lacks, so they are counted here.
        self.stats = TunnelStats(window=WINDOW, history=1)
        self.per_second: deque[list[int]] = deque()  # [second, count], oldest first

    def add(self, record: RequestRecord, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.stats.add(record, now)
        second = int(now)
        if self.per_second and self.per_second[-1][0] == second:
            self.per_second[-1][1] += 1
        else:
            self.per_second.append([second, 1])
            self._expire(second)

    def _expire(self, second: int) -> None:
        while self.per_second and self.per_second[0][0] <= second - WINDOW:
            self.per_second.popleft()

    def figures(self, now: float | None = None) -> Figures:
        now = time.monotonic() if now is None else now
        second = int(now)
        self._expire(second)
        last_minute = sum(n for s, n in self.per_second if s > second - 60)
        last_five = sum(n for _, n in self.per_second)
        snapshot = self.stats.snapshot(now)
        return Figures(
            total=self.stats.total_requests,
            rate_1m=last_minute / 60,
            rate_5m=last_five / WINDOW,
            p50=snapshot.p50,
            p90=snapshot.p90,
        )


@dataclass(frozen=True, slots=True)
class TcpFigures:
    total: int  # connections ever opened
    open: int
    rate_in: float  # bytes per second, visitors -> local service, over the last seconds
    rate_out: float


def tcp_figures(ledgers: list[TcpLedger], now: float | None = None) -> TcpFigures:
    """The TCP tunnels' connections and throughput, summed."""
    rates = [ledger.throughput(now) for ledger in ledgers]
    return TcpFigures(
        total=sum(ledger.total for ledger in ledgers),
        open=sum(len(ledger.open) for ledger in ledgers),
        rate_in=sum(r[0] for r in rates),
        rate_out=sum(r[1] for r in rates),
    )
