"""Shown instead of the dashboard when the profiles file cannot be used: what to fix, where."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static


class ProfilesErrorScreen(Screen[bool]):
    """Dismisses with True when the user asks to reload the file."""

    BINDINGS = [Binding("r", "reload", "Reload the file"), Binding("q", "quit", "Quit")]

    def __init__(self, message: str, path: str) -> None:
        super().__init__()
        self.message = message
        self.path = path

    def compose(self) -> ComposeResult:
        with Vertical(id="file-error"):
            yield Static("The profiles file needs fixing", id="file-error-title")
            yield Static(self.message, id="file-error-message", markup=False)
            yield Static(
                f"\nmolehill has not changed {self.path}. Fix it in your editor, then press r "
                "to reload (or q to quit).",
                markup=False,  # a folder may be called "[old]"
            )
        yield Footer()

    def action_reload(self) -> None:
        self.dismiss(True)

    async def action_quit(self) -> None:
        self.app.exit()
