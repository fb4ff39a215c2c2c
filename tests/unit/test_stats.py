"""The tunnel's rolling figures with known inputs: percentiles per second and over the window,
app time apart from the tunnel's, 4xx apart from 5xx, the local app's down state, and memory
that stays bounded however long it runs."""

from __future__ import annotations

import pytest

from relay.events import RequestRecord
from relay.stats import TunnelStats

T0 = 1000.0


def rec(
    ms: float,
    status: int = 200,
    app: float | None = None,
    failure: str = "",
    kind: str = "",
    wall: float = 0.0,
) -> RequestRecord:
    return RequestRecord(
        time=wall,
        method="GET",
        path="/",
        status=status,
        duration_ms=ms,
        bytes_in=10,
        bytes_out=20,
        client="127.0.0.1",
        stream=1,
        app_ms=app,
        overhead_ms=None if app is None else ms - app,
        failure=failure,
        failure_kind=kind,
    )


def test_p50_and_p99_of_one_second_are_within_a_bucket_of_the_truth():
    stats = TunnelStats()
    for ms in range(1, 101):  # 1..100 ms: p50 = 50, p99 = 99
        stats.add(rec(float(ms)), now=T0)
    snap = stats.snapshot(now=T0)
    assert snap.p50 == pytest.approx(50, rel=0.05)
    assert snap.p99 == pytest.approx(99, rel=0.05)
    assert snap.per_second[-1] == (snap.p50, snap.p99)
    assert snap.per_second[-1][0] == pytest.approx(50, rel=0.05)


def test_per_second_series_has_one_slot_a_second_with_gaps_for_idle_seconds():
    stats = TunnelStats(history=10)
    for _ in range(9):
        stats.add(rec(2.0), now=T0)
    stats.add(rec(400.0), now=T0)  # one slow request in ten: the p99 of that second
    stats.add(rec(10.0), now=T0 + 3)  # T0+1 and T0+2 had nothing
    series = stats.snapshot(now=T0 + 3).per_second
    assert len(series) == 10
    assert series[-1] == (pytest.approx(10, rel=0.05), pytest.approx(10, rel=0.05))
    assert series[-2] is None and series[-3] is None
    p50, p99 = series[-4]
    assert p50 == pytest.approx(2, rel=0.05)
    assert p99 == pytest.approx(400, rel=0.05)
    # ten seconds later, the first second has left the chart
    later = stats.snapshot(now=T0 + 11).per_second
    assert later[-9] is not None and all(point is None for point in later[:-9])
    assert stats.snapshot(now=T0 + 30).per_second == (None,) * 10


def test_memory_stays_bounded_over_a_long_run():
    stats = TunnelStats(window=60, history=600)
    for second in range(2000):
        stats.add(rec(1.0 + second % 7), now=T0 + second)
    assert len(stats.seconds) <= 60
    assert len(stats.history) == 600
    assert len(stats.snapshot(now=T0 + 1999).per_second) == 600


def test_app_time_and_tunnel_overhead_are_reported_apart():
    stats = TunnelStats()
    for _ in range(50):
        stats.add(rec(105.0, app=100.0), now=T0)
    for _ in range(50):
        stats.add(rec(25.0, app=5.0), now=T0)
    stats.add(rec(1.0, status=502, failure="down", kind="refused"), now=T0)  # no app time
    snap = stats.snapshot(now=T0)
    assert snap.app_p50 == pytest.approx(5, rel=0.05)
    assert snap.app_p99 == pytest.approx(100, rel=0.05)
    assert snap.overhead_p50 == pytest.approx(5, rel=0.05)
    assert snap.overhead_p99 == pytest.approx(20, rel=0.05)


def test_4xx_5xx_and_no_response_are_counted_apart():
    stats = TunnelStats()
    for status in [200] * 5 + [404, 401, 500, 503, 0]:
        stats.add(rec(1.0, status=status), now=T0)
    snap = stats.snapshot(now=T0)
    assert snap.client_error_rate == pytest.approx(0.2)
    assert snap.server_error_rate == pytest.approx(0.2)
    assert snap.failed_rate == pytest.approx(0.1)
    assert snap.error_rate == pytest.approx(0.3)  # 5xx and no response, as before


def test_app_down_counts_from_the_first_failure_and_clears_on_a_response():
    stats = TunnelStats()
    refused = "local app refused the connection (127.0.0.1:3000)"
    for i in range(3):
        stats.add(rec(0.5, 502, failure=refused, kind="refused", wall=100.0 + i), now=T0)
    down = stats.snapshot(now=T0).app_down
    assert down is not None
    assert (down.kind, down.since, down.requests, down.got_502) == ("refused", 100.0, 3, 3)
    assert down.describe("12:01:03") == f"{refused} since 12:01:03 — 3 requests got 502"
    stats.add(rec(1.0, status=0), now=T0)  # the visitor left: says nothing about the app
    assert stats.snapshot(now=T0).app_down is not None
    stats.add(rec(1.0, status=404), now=T0)  # the app answered: it is back
    assert stats.snapshot(now=T0).app_down is None


def test_a_new_kind_of_failure_starts_a_new_run():
    stats = TunnelStats()
    stats.add(rec(1, 502, failure="refused it", kind="refused", wall=1.0), now=T0)
    stats.add(rec(1, 0, failure="reset it", kind="reset", wall=2.0), now=T0)
    down = stats.snapshot(now=T0).app_down
    assert down is not None
    assert (down.kind, down.since, down.requests, down.got_502) == ("reset", 2.0, 1, 0)
    assert down.describe("t") == "reset it since t — 1 request failed"
