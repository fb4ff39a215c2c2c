"""The dashboard's keys: its bindings, the footer's order, the command palette's entries and
the actions that change only what is shown (pause and filter the log, the sidebar, help)."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tui.screens.filter import FilterScreen
from tui.screens.help import HelpScreen
from tui.widgets.request_log import LogFilter, RequestLog, Row
from tui.widgets.tunnel_list import TunnelList

# The footer keeps the keys of these actions first when the terminal is narrow.
FOOTER_PRIORITY = (
    "help",
    "quit",
    "choose",
    "start",
    "stop",
    "add_profile",
    "toggle_pause",
    "filter",
    "edit_profile",
    "copy_url",
    "command_palette",
    "toggle_sidebar",
    "delete_profile",
    "open_url",
)

# The command palette's entries after Textual's own: (title, help, action without "action_").
PALETTE = (
    ("Start tunnel", "Start the selected tunnel", "start"),
    ("Stop tunnel", "Stop the selected tunnel", "stop"),
    ("Start all tunnels", "Start every profile", "start_all"),
    ("Stop all tunnels", "Stop every tunnel", "stop_all"),
    ("New profile", "Add a tunnel profile", "add_profile"),
    ("Edit profile", "Edit the selected profile", "edit_profile"),
    ("Delete profile", "Delete the selected profile", "delete_profile"),
    ("Copy public URL", "Copy the tunnel's URL", "copy_url"),
    ("Open in browser", "Open the tunnel's URL", "open_url"),
    ("Pause / follow log", "Freeze the request log", "toggle_pause"),
    ("Show / hide sidebar", "More room for the log", "toggle_sidebar"),
    ("Filter log", "Filter by method, status, path", "filter"),
    ("Help", "Keys and what the panes show", "help"),
)


class DashboardKeys(App[None]):
    """Mixed into MolehillApp (after InspectorHooks); uses its ``_rows()`` for the log."""

    BINDINGS = [
        Binding("s", "start", "Start"),
        Binding("x", "stop", "Stop"),
        Binding("A", "start_all", "Start all", show=False),
        Binding("Z", "stop_all", "Stop all", show=False),
        Binding("n", "add_profile", "New"),
        Binding("e", "edit_profile", "Edit"),
        Binding("d", "delete_profile", "Delete"),
        Binding("R", "restart_app", "Restart app", show=False),
        Binding("L", "app_log", "App log", show=False),
        Binding("c", "copy_url", "Copy URL"),
        Binding("o", "open_url", "Open"),
        Binding("space", "toggle_pause", "Pause"),
        Binding("slash", "filter", "Filter"),
        Binding("t", "toggle_sidebar", "Sidebar"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("Q", "quit_all", "Stop all and quit", show=False),
    ]

    def _rows(self) -> Iterable[Row]:
        raise NotImplementedError

    def action_toggle_pause(self) -> None:
        log = self.query_one(RequestLog)
        log.paused = not log.paused
        if not log.paused:
            log.replace(self._rows())  # with what arrived meanwhile, from the newest row

    def action_filter(self) -> None:
        log = self.query_one(RequestLog)

        def apply(chosen: LogFilter | None) -> None:
            if chosen is not None:
                log.filter = chosen
                log.replace(self._rows())

        self.push_screen(FilterScreen(log.filter), apply)

    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one(TunnelList)
        sidebar.display = not sidebar.display
        if not sidebar.display and sidebar.has_focus:
            self.query_one(RequestLog).focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, help_text, action in PALETTE:
            yield SystemCommand(title, help_text, getattr(self, f"action_{action}"))
