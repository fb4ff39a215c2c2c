"""One lazily re-armed timer per visitor connection: the deadline of what it waits for now."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Deadline:
    """A deadline of some ``kind`` ("" when there is none); ``on_expiry(kind)`` when it passes.

    Connections move their deadline with every request, nearly always later: the timer is then
    left to fire and sleeps again until the new deadline, instead of a cancel and a new timer
    per request.
    """

    __slots__ = ("_at", "_loop", "_on_expiry", "_timer", "_timer_at", "kind")

    def __init__(self, on_expiry: Callable[[str], None]) -> None:
        self._loop = asyncio.get_running_loop()  # arm() runs per request: look it up once
        self._on_expiry = on_expiry
        self.kind = ""
        self._at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def arm(self, kind: str, seconds: float) -> None:
        """``kind`` is due in ``seconds`` from now (0: no deadline at all)."""
        if not seconds:
            self.kind = ""
            return
        loop = self._loop
        at = loop.time() + seconds
        self._at, self.kind = at, kind
        if self._timer is None or at < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(at, self._fire)
            self._timer_at = at

    def clear(self) -> None:
        self.kind = ""

    def cancel(self) -> None:
        self.kind = ""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        kind = self.kind
        if not kind:
            return
        loop = self._loop
        if loop.time() < self._at:  # moved later since the timer was set
            self._timer = loop.call_at(self._at, self._fire)
            self._timer_at = self._at
            return
        self.kind = ""
        self._on_expiry(kind)
