"""Headless output of agent events: one human line or one JSON object per event."""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from typing import Protocol

from relay.events import (
    AgentEvent,
    ConnectionRecord,
    LinkChanged,
    Reconnected,
    Reconnecting,
    RequestRecord,
    TunnelClosed,
    TunnelOpen,
    TunnelRefused,
    event_to_json,
)
from relay.terminal_text import visible
from tui.format import human_size

FLUSH_EVERY = 0.05  # seconds between flushes of request lines


class Sink(Protocol):
    """Where lines go: a text stream, or a LineWriter (tui.output) on the agent's stdout."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> None: ...


class _Stamps:
    """``HH:MM:SS`` of a wall-clock time, formatted once per second rather than per request."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = (-1, "")  # one tuple, replaced whole: reporters on other threads share it

    def __call__(self, when: float) -> str:
        second = math.floor(when)  # what localtime() truncates to
        last = self.last
        if last[0] == second:
            return last[1]
        text = time.strftime("%H:%M:%S", time.localtime(second))
        self.last = (second, text)
        return text


_stamp = _Stamps()
# Sizes under 1 KiB, the usual request and response, spelled once each.
_SMALL_SIZES = tuple(human_size(n) for n in range(1024))


def _size(n: int) -> str:
    return _SMALL_SIZES[n] if 0 <= n < 1024 else human_size(n)


def human_line(event: AgentEvent) -> str:
    if isinstance(event, RequestRecord):
        line = (
            f"{_stamp(event.time)}  {event.method:<7} {event.path}  "
            f"{event.status if event.status else '---'}  "
            f"{event.duration_ms:.1f}ms  {_size(event.bytes_in)} in {_size(event.bytes_out)} out"
        )
        # Why the local app gave no (whole) answer, when that is what happened.
        return f"{line}  {event.failure}" if event.failure else line
    if isinstance(event, TunnelOpen):
        scheme = "tcp" if event.url.startswith("tcp://") else "http"
        return f"tunnel '{event.name}' online: {event.url} -> {scheme}://{event.local}"
    if isinstance(event, ConnectionRecord):
        return (
            f"{_stamp(event.time)}  TCP     {event.client}  {event.closed}  "
            f"{event.duration_ms / 1000:.1f}s  {_size(event.bytes_in)} in "
            f"{_size(event.bytes_out)} out"
        )
    if isinstance(event, Reconnecting):
        return f"tunnel '{event.name}': {event.reason}; retrying in {event.delay:.1f}s"
    if isinstance(event, Reconnected):
        return f"tunnel '{event.name}' back online: {event.url}"
    if isinstance(event, LinkChanged):
        how = "up" if event.up else f"down ({event.reason})"
        return (
            f"tunnel '{event.name}': link through {event.relay} {how}; "
            f"{event.links_up} of {event.links} links up"
        )
    if isinstance(event, TunnelRefused):
        return f"tunnel refused by the relay: {event.message}"
    if isinstance(event, TunnelClosed):
        return f"tunnel '{event.name}' closed"
    return repr(event)


class Reporter:
    """Prints events as they come; ``tag`` prefixes every line (the profile name).

    Request lines are written a few times a second, not one by one: under load a write per
    request was a sixth of the agent's time, and one request at a time it was a system call
    on each request's path. The lines are gathered here rather than left to the stream's
    buffer, which PYTHONUNBUFFERED or a terminal would flush line by line. Other events (the
    URL, a reconnect) are written at once with what is pending: the user is waiting for them.
    The commands write through a LineWriter (tui.output): a reader that stops reading costs
    lines, never the event loop.
    """

    def __init__(self, as_json: bool, tag: str | None = None, out: Sink | None = None) -> None:
        self.as_json = as_json
        self.tag = tag
        self.out = out or sys.stdout
        self._pending: list[str] = []
        self._flush_scheduled = False

    def __call__(self, event: AgentEvent) -> None:
        if type(event) is RequestRecord and not self.as_json:  # the request log: every request
            line = human_line(event)
            if self.tag is not None:
                line = f"[{self.tag}] {line}"
            self._pending.append(line + "\n")
            if not self._flush_scheduled:
                self._flush_later()
            return
        if self.as_json:
            data = event_to_json(event)
            if self.tag is not None:
                data = {"profile": self.tag, **data}
            line = json.dumps(data, separators=(",", ":"))
        else:
            line = human_line(event)
            if self.tag is not None:
                line = f"[{self.tag}] {line}"
        # Refusals go to stderr in human mode: they are the error message of a failed command.
        if isinstance(event, TunnelRefused) and not self.as_json:
            self.flush()
            print(f"molehill: {visible(line)}", file=sys.stderr, flush=True)
            return
        self._pending.append(line + "\n")
        if not isinstance(event, RequestRecord):
            self.flush()
        elif not self._flush_scheduled:
            self._flush_later()

    def _flush_later(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_scheduled = True
        loop.call_later(FLUSH_EVERY, self.flush)

    def flush(self) -> None:
        """Write the pending lines now."""
        self._flush_scheduled = False
        if self._pending:
            # Paths, URLs and reasons come from the relay and the visitors: their control
            # characters are spelled out, never obeyed by the terminal (one scan per write).
            text = visible("".join(self._pending), lines=True)
            self._pending.clear()
            self.out.write(text)
        self.out.flush()
