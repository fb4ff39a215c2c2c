"""The output of one profile's command, live, with its state; R restarts it, Escape closes."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Log, Static

from runner.hosted import HostedApps

REFRESH_EVERY = 0.5  # seconds between looks at the command's output


class AppLogScreen(ModalScreen[None]):
    """Shows `name`'s recent output (the in-memory ring; `molehill logs NAME` has all of it)."""

    BINDINGS = [
        Binding("escape,q,L", "dismiss", "Close"),
        Binding("R", "restart", "Restart app"),
    ]

    def __init__(self, name: str, apps: HostedApps) -> None:
        super().__init__()
        self.profile_name = name
        self.apps = apps
        self._shown: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="app-log-box"):
            yield Static(
                f"output of {self.profile_name}'s command", id="app-log-title", markup=False
            )
            yield Static("", id="app-log-state", markup=False)  # the command, as written
            yield Log(id="app-log", max_lines=2000)
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_output()
        self.set_interval(REFRESH_EVERY, self.refresh_output)

    def refresh_output(self) -> None:
        self.query_one("#app-log-state", Static).update(
            self.apps.describe(self.profile_name) or "this profile runs no command"
        )
        lines = self.apps.lines(self.profile_name)
        log = self.query_one(Log)
        # The ring drops old lines as new ones come: append what follows what is shown, or
        # redraw when the two no longer line up (a restart, or more than a ring's worth).
        tail = self._shown[-1:] if self._shown else []
        if tail and tail[0] in lines and len(lines) >= len(self._shown):
            start = len(lines) - 1 - lines[::-1].index(tail[0])
            new = lines[start + 1 :]
        else:
            log.clear()
            new = lines
        if new:
            log.write_lines(new)
        self._shown = lines

    def action_restart(self) -> None:
        problem = self.apps.restart(self.profile_name)
        self.notify(problem or f"restarting {self.profile_name}'s command", timeout=3)
