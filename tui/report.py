"""Headless output of agent events: one human line or one JSON object per event."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import TextIO

from relay.events import (
    AgentEvent,
    Reconnected,
    Reconnecting,
    RequestRecord,
    TunnelClosed,
    TunnelOpen,
    TunnelRefused,
    event_to_json,
)
from tui.format import human_size


def human_line(event: AgentEvent) -> str:
    if isinstance(event, RequestRecord):
        stamp = time.strftime("%H:%M:%S", time.localtime(event.time))
        status = str(event.status) if event.status else "---"
        return (
            f"{stamp}  {event.method:<7} {event.path}  {status}  "
            f"{event.duration_ms:.1f}ms  {human_size(event.bytes_in)} in "
            f"{human_size(event.bytes_out)} out"
        )
    if isinstance(event, TunnelOpen):
        return f"tunnel '{event.name}' online: {event.url} -> http://{event.local}"
    if isinstance(event, Reconnecting):
        return f"tunnel '{event.name}': {event.reason}; retrying in {event.delay:.1f}s"
    if isinstance(event, Reconnected):
        return f"tunnel '{event.name}' back online: {event.url}"
    if isinstance(event, TunnelRefused):
        return f"tunnel refused by the relay: {event.message}"
    if isinstance(event, TunnelClosed):
        return f"tunnel '{event.name}' closed"
    return repr(event)


class Reporter:
    """Prints events as they come; ``tag`` prefixes every line (the profile name)."""

    def __init__(self, as_json: bool, tag: str | None = None, out: TextIO | None = None) -> None:
        self.as_json = as_json
        self.tag = tag
        self.out = out or sys.stdout
        self._flush_scheduled = False

    def __call__(self, event: AgentEvent) -> None:
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
            print(f"molehill: {line}", file=sys.stderr, flush=True)
            return
        self.out.write(line + "\n")
        # One flush per loop iteration, not per line: at thousands of requests a second the
        # flushes were a sixth of the agent's time.
        if not self._flush_scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.out.flush()
                return
            self._flush_scheduled = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self.out.flush()
