"""Asks whether to take over a name the relay refused; dismisses with True (take it) or False."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class TakeoverScreen(ModalScreen[bool]):
    """Shown when a profile's name is held or in use and the relay knows our agent token:
    the relay hands the name over only to a tunnel opened with that same token."""

    BINDINGS = [
        Binding("y", "answer(True)", "Take it over"),
        Binding("n,escape", "answer(False)", "Wait"),
    ]

    def __init__(self, profile: str, name: str, why: str) -> None:
        super().__init__()
        self.profile = profile
        self.name_wanted = name
        self.why = why

    def compose(self) -> ComposeResult:
        with Vertical(id="takeover"):
            yield Static(
                f"{self.profile}: {self.why}", id="takeover-why", markup=False
            )  # the relay's words
            yield Static(
                f"Take '{self.name_wanted}' over? Only a tunnel opened with your agent token "
                "can have it; that tunnel stops.",
                id="takeover-question",
            )
            with Horizontal(id="takeover-buttons"):
                yield Button("Take it over", variant="warning", id="take")
                yield Button("Wait", id="wait")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "take")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
