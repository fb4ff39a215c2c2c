"""The log budget for refusals (sans-I/O: the clock is passed in)."""

from __future__ import annotations

from relay.server.log_budget import BURST_SECONDS, SUMMARY_EVERY, LogBudget


def test_a_burst_then_the_rate_then_a_summary_of_the_rest():
    budget = LogBudget(rate=10, now=0.0)
    burst = int(10 * BURST_SECONDS)
    passed = [budget.allow("request_refused", "per_ip", 0.0) for _ in range(burst + 30)]
    assert passed.count(True) == burst  # the burst, then nothing within the same instant
    assert budget.allow("request_refused", "per_ip", 0.5)  # half a second refills 5 lines
    assert sum(budget.allow("request_refused", "rate", 0.5) for _ in range(10)) == 4
    assert budget.summary(SUMMARY_EVERY - 0.1) == []  # not yet
    (held,) = budget.summary(SUMMARY_EVERY)
    assert held == {
        "suppressed": "request_refused",
        "count": 36,
        "reasons": "per_ip:30,rate:6",
        "seconds": SUMMARY_EVERY,
    }
    assert budget.summary(2 * SUMMARY_EVERY) == []  # said once


def test_each_kind_has_its_own_bucket_and_other_events_are_never_held():
    budget = LogBudget(rate=1, now=0.0)
    for _ in range(100):
        budget.allow("tcp_refused", "per_ip", 0.0)
    assert budget.allow("request_refused", "rate", 0.0)  # another kind: its own bucket
    assert all(budget.allow("tunnel_online", "", 0.0) for _ in range(1000))
    assert all(budget.allow("log_suppressed", "", 0.0) for _ in range(1000))
    kinds = [held["suppressed"] for held in budget.summary(SUMMARY_EVERY)]
    assert kinds == ["tcp_refused"]


def test_rate_zero_logs_every_line():
    budget = LogBudget(rate=0, now=0.0)
    assert all(budget.allow("request_refused", "per_ip", 0.0) for _ in range(10_000))
    assert budget.summary(SUMMARY_EVERY) == []


def test_a_long_quiet_spell_refills_no_more_than_the_burst():
    budget = LogBudget(rate=2, now=0.0)
    budget.allow("agent_refused", "bad_token", 0.0)
    later = [budget.allow("agent_refused", "bad_token", 3600.0) for _ in range(100)]
    assert later.count(True) == int(2 * BURST_SECONDS)
