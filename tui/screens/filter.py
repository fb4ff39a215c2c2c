"""Choose what the request log shows: a method, a status class, text in the path, and a query in
the inspector's filter language (a bad term is pointed at here, the screen stays open)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from inspector.filters import FilterError
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
            yield Label("Query")
            yield Input(
                c.query,
                placeholder="status:5xx path:/api/* dur>500ms -method:GET",
                id="filter-query",
            )
            yield Static("", id="filter-error")
            with Horizontal(id="filter-buttons"):
                yield Button("Apply", variant="primary", id="apply")
                yield Button("Clear", id="clear")

    def on_mount(self) -> None:
        self.query_one("#filter-text", Input).focus()

    def _chosen(self) -> LogFilter | None:
        """The filter as entered, or None (and the error under the query) if it does not parse."""
        method = self.query_one("#filter-method", Select).value
        status = self.query_one("#filter-status", Select).value
        query = self.query_one("#filter-query", Input).value
        try:
            return LogFilter.with_query(
                method=method if isinstance(method, str) else "",
                status=status if isinstance(status, str) else "",
                text=self.query_one("#filter-text", Input).value.strip(),
                query=query,
            )
        except FilterError as exc:
            self._show_error(query, exc)
            return None

    def _show_error(self, query: str, exc: FilterError) -> None:
        # The query as typed (stripped as parsed), a caret under the bad term, then why.
        shown = query.strip()
        error = self.query_one("#filter-error", Static)
        error.update(
            Text.assemble(
                (f"{shown}\n", "bold"),
                (" " * exc.position + "^" * max(1, len(exc.term)) + "\n", "bold red"),
                (f"column {exc.position + 1} ({exc.term!r}): {exc.message}", "red"),
            )
        )
        error.add_class("-shown")
        self.query_one("#filter-query", Input).focus()

    def _apply(self) -> None:
        chosen = self._chosen()
        if chosen is not None:
            self.dismiss(chosen)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "apply":
            self._apply()
        else:
            self.dismiss(LogFilter())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._apply()

    def action_cancel(self) -> None:
        self.dismiss(None)
