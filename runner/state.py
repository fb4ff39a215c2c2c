"""The state of a profile's app, as a table-driven machine with no processes in it (sans-I/O).

Theory of operation: the supervisor reports what it saw (the process started, the port answered
or not, the process exited, it was stopped) and the machine says which state that leads to and
since when. "starting" lasts until the port first answers; after that a failed check is
"down", and a later good one "ready" again. An exit is "exited" whatever came before.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

STOPPED = "stopped"
STARTING = "starting"
READY = "ready"
DOWN = "app down"
EXITED = "app exited"
FAILED = "failed to start"

# (state, what happened) -> next state; a pair not listed leaves the state as it is.
TRANSITIONS: dict[tuple[str, str], str] = {
    (STOPPED, "started"): STARTING,
    (EXITED, "started"): STARTING,
    (FAILED, "started"): STARTING,
    (STARTING, "answered"): READY,
    (DOWN, "answered"): READY,
    (READY, "silent"): DOWN,
    (STARTING, "exited"): EXITED,
    (READY, "exited"): EXITED,
    (DOWN, "exited"): EXITED,
    (STOPPED, "failed"): FAILED,
    (EXITED, "failed"): FAILED,
    (STARTING, "stopped"): STOPPED,
    (READY, "stopped"): STOPPED,
    (DOWN, "stopped"): STOPPED,
    (EXITED, "stopped"): STOPPED,
    (FAILED, "stopped"): STOPPED,
}
HAPPENINGS = frozenset(event for _, event in TRANSITIONS)


@dataclass(frozen=True, slots=True)
class AppState:
    """Where an app is, since when (time.time()), and what to tell the user about it."""

    state: str = STOPPED
    since: float = 0.0
    detail: str = ""  # the exit status, why it did not start, which check failed
    exit_code: int | None = None

    def after(
        self, happening: str, now: float, detail: str = "", code: int | None = None
    ) -> AppState:
        """The state after `happening`; itself when that changes nothing."""
        if happening not in HAPPENINGS:
            raise ValueError(f"unknown happening {happening!r}; known: {sorted(HAPPENINGS)}")
        nxt = TRANSITIONS.get((self.state, happening))
        if nxt is None or (nxt == self.state and detail == self.detail):
            return self
        return AppState(nxt, now, detail, code if nxt == EXITED else None)


def describe_exit(code: int) -> str:
    """An exit status as people say it: "exited with status 1", "killed by signal 9 (SIGKILL)"."""
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = "unknown"
    return f"killed by signal {-code} ({name})"
