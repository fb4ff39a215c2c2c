"""Choose what the request log shows: a method, a status class, text in the path."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from tui.widgets.request_log import LogFilter

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "---")


class FilterScreen(ModalScreen[LogFilter | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: LogFilter) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        c = self.current
        with Vertical(id="filter"):
            yield Static("Filter the request log", id="filter-title")
            yield Label("Method")
            yield Select(
                [(m, m) for m in METHODS], value=c.method or Select.NULL, id="filter-method"
            )
            yield Label("Status class")
            yield Select(
                [(s, s) for s in STATUS_CLASSES], value=c.status or Select.NULL, id="filter-status"
            )
            yield Label("Path contains")
            yield Input(c.text, placeholder="/api", id="filter-text")
            with Horizontal(id="filter-buttons"):
                yield Button("Apply", variant="primary", id="apply")
                yield Button("Clear", id="clear")

    def on_mount(self) -> None:
        self.query_one("#filter-text", Input).focus()

    def _chosen(self) -> LogFilter:
        method = self.query_one("#filter-method", Select).value
        status = self.query_one("#filter-status", Select).value
        return LogFilter(
            method=method if isinstance(method, str) else "",
            status=status if isinstance(status, str) else "",
            text=self.query_one("#filter-text", Input).value.strip(),
        )

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self._chosen() if event.button.id == "apply" else LogFilter())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(self._chosen())

    def action_cancel(self) -> None:
        self.dismiss(None)
