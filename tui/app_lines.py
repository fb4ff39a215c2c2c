"""A profile's app state as a line of `molehill start` output: plain text or {"event": "app"}."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from runner.apps import AppRunner
from runner.state import EXITED, FAILED, READY, STARTING, AppState
from tui.output import LineWriter


def app_line(name: str, state: AppState, last: list[str], command: str) -> str:
    """The plain line(s) for one state change of profile `name`'s command."""
    tag = f"[{name}] "
    if state.state == STARTING:
        return f"{tag}app starting ({state.detail}): {command}"
    if state.state == READY:
        return f"{tag}app ready"
    if state.state == EXITED:
        lines = "".join(f"\n{tag}  | {line}" for line in last)
        told = "; its last lines:" if last else " (it printed nothing)"
        return (
            f"{tag}app {state.detail}{told}{lines}\n{tag}(R in the dashboard or a new "
            "`molehill start` runs it again; `molehill logs " + name + "` shows all)"
        )
    if state.state == FAILED:
        return f"{tag}app failed to start: {state.detail}"
    detail = f": {state.detail}" if state.detail else ""
    return f"{tag}{state.state if state.state.startswith('app') else 'app ' + state.state}{detail}"


def app_record(name: str, state: AppState, last: list[str]) -> dict[str, object]:
    """The JSON object for one state change (last_lines only with an exit)."""
    record: dict[str, object] = {
        "event": "app",
        "profile": name,
        "state": state.state,
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(state.since)),
        "detail": state.detail,
    }
    if state.state == EXITED:
        record["exit_code"] = state.exit_code
        record["last_lines"] = last
    return record


def reporter(
    out: LineWriter, as_json: bool, runner: list[AppRunner]
) -> Callable[[str, AppState], None]:
    """An AppRunner listener writing to `out` (`runner` is filled in once the runner exists)."""

    def changed(name: str, state: AppState) -> None:
        app = runner[0].apps[name]
        last = app.last_lines() if state.state == EXITED else []
        if as_json:
            out.write(json.dumps(app_record(name, state, last)) + "\n")
        else:
            out.write(app_line(name, state, last, app.command) + "\n")

    return changed
