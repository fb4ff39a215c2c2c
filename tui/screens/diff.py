"""The difference between an exchange's response and its replay's: status, headers, body."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from inspector.diff import ResponseDiff
from relay.terminal_text import visible


def _styled(line: str) -> Text:
    line = visible(line, lines=True)  # the responses' own text: no terminal controls
    if line.startswith(("  +", "+")) and not line.startswith("+++"):
        return Text(line, style="green")
    if line.startswith(("  -", "-")) and not line.startswith("---"):
        return Text(line, style="red")
    if line.startswith("  ~"):
        return Text(line, style="yellow")
    return Text(line)


class DiffScreen(ModalScreen[None]):
    """Shows a ResponseDiff; Escape closes it."""

    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, diff: ResponseDiff) -> None:
        super().__init__()
        self.diff = diff

    def compose(self) -> ComposeResult:
        lines = self.diff.lines()
        with VerticalScroll(id="diff-body"):
            yield Static(Text(visible(lines[0]), style="bold"), id="diff-title")
            yield Static(Text("\n").join(_styled(line) for line in lines[1:]), id="diff-lines")
        yield Footer()
