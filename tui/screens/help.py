"""The help screen: what the dashboard shows and every key binding."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

KEYS = (
    ("s / x", "start / stop the selected tunnel"),
    ("A / Z", "start all / stop all tunnels"),
    ("n / e / d", "new / edit / delete a profile"),
    ("R / L", "restart the selected profile's command / show its output"),
    ("c", "copy the public URL (sent to the terminal's clipboard with OSC 52)"),
    ("o", "open the public URL in a browser, where there is one"),
    ("space", "pause or follow the request log"),
    ("/", "filter the log: method, status, path, or a query like status:5xx dur>500ms"),
    ("enter", "details of the highlighted request"),
    ("r / e / d", "in details: replay it / edit and replay / diff with its latest replay"),
    ("↑ ↓ home end", "move in the log; end follows new requests again"),
    ("t", "hide or show the sidebar (more room for the log)"),
    ("tab", "move between the sidebar and the log"),
    ("ctrl+p", "command palette: every action by name"),
    ("?", "this help"),
    ("q", "quit (tunnels stop); attached to `molehill service`: detach, tunnels run on"),
    ("Q", "attached: stop the service and its tunnels, and quit"),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 3))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in KEYS:
            table.add_row(key, what)
        with VerticalScroll(id="help"):
            yield Static("molehill dashboard", id="help-title")
            yield Static(
                "The sidebar lists your profiles and their state. The main area shows the "
                "selected tunnel's live request log, its latency figures (p50/p90/p99 over the "
                "last minute, requests per second, errors, bytes, open connections) and the "
                "relay round-trip time, so you can tell your app's time from the tunnel's.\n"
            )
            yield Static(table)
            yield Static("\nPress Escape to close.", classes="dim")
        yield Footer()
