"""How many log lines visitors can cause: refusals are logged up to a rate, the rest counted.

Anyone who can reach the relay can make it refuse connections as fast as they can open them,
and each refusal is a log line: at tens of thousands a second that fills a disk or makes the
log service drop everyone's lines, the ones an operator needs included. So the events that
visitors (or unauthenticated peers) cause draw from a token bucket per event kind; what is over
it is counted by event and rule, and :meth:`LogBudget.summary` gives one line per event kind for
what was held back (the relay logs it every ``SUMMARY_EVERY`` seconds). The metrics' counters
(error pages, TCP refusals) still count every one. Sans-I/O: the clock is passed in.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

# The events a peer without a token can cause once per connection (or per request).
LIMITED: Final = frozenset(
    {"request_refused", "tcp_refused", "node_link_refused", "agent_refused", "response_dropped"}
)
SUMMARY_EVERY: Final = 10.0  # seconds between the lines that say what was held back
BURST_SECONDS: Final = 5.0  # the bucket holds this many seconds' worth of lines


class LogBudget:
    """Token buckets of log lines, one per event kind; ``rate`` 0 lets every line through."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.burst = max(1.0, rate * BURST_SECONDS)
        self._tokens: dict[str, float] = {}
        self._at: dict[str, float] = {}
        self._held: dict[str, Counter[str]] = {}
        self.summarised_at = now

    def allow(self, event: str, reason: str, now: float) -> bool:
        """Whether this line may be logged; if not, it is counted under ``reason``."""
        if not self.rate or event not in LIMITED:
            return True
        tokens = self._tokens.get(event, self.burst)
        tokens = min(self.burst, tokens + (now - self._at.get(event, now)) * self.rate)
        self._at[event] = now
        if tokens >= 1.0:
            self._tokens[event] = tokens - 1.0
            return True
        self._tokens[event] = tokens
        self._held.setdefault(event, Counter())[reason or "-"] += 1
        return False

    def summary(self, now: float) -> list[dict[str, object]]:
        """What was held back since the last summary, one entry per event kind (and forget it);
        [] until ``SUMMARY_EVERY`` seconds have passed, or when nothing was."""
        if now - self.summarised_at < SUMMARY_EVERY:
            return []
        self.summarised_at = now
        held, self._held = self._held, {}
        return [
            {
                "suppressed": event,
                "count": sum(reasons.values()),
                "reasons": ",".join(f"{r}:{n}" for r, n in reasons.most_common(8)),
                "seconds": SUMMARY_EVERY,
            }
            for event, reasons in sorted(held.items())
        ]
