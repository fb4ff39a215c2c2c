"""Request details: headers, bodies and timings of one exchange, in a modal screen; ``r`` replays
it to the local app, ``e`` edits it first, ``d`` diffs its answer with its replay's."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from inspector.replay import ReplayError
from inspector.resign import ResignError
from relay.events import RequestRecord
from relay.terminal_text import has_controls, visible
from tui.bodies import describe_body
from tui.format import human_size, ms, status_class
from tui.log_records import StoredRecord
from tui.replays import ReplayDone, Replayer
from tui.screens.diff import DiffScreen
from tui.screens.edit import EditRequestScreen
from tui.widgets.message_list import MessageList


def _headers_table(headers: list[tuple[str, str]]) -> Table | Text:
    if not headers:
        return Text("(not captured)", style="dim")
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in headers:
        # Text, not str: a str cell is read as markup ("[/b]" in a header raised MarkupError).
        table.add_row(Text(visible(name)), Text(visible(value)))
    return table


def _body(data: bytes, headers: list[tuple[str, str]], truncated: bool) -> Syntax | Text:
    kind, text = describe_body(data, headers, truncated)
    if kind == "empty":
        return Text("(empty)", style="dim")
    text = visible(text, lines=True)
    if kind == "json":
        return Syntax(text, "json", theme="ansi_dark", word_wrap=True)
    return Text(text, style="white" if kind == "text" else "dim")


class RequestDetailsScreen(ModalScreen[None]):
    """Shows one RequestRecord; Escape closes it. With a ``replayer``, r/e/d replay, edit and
    diff; ``on_replayed`` is given each replay's row for the log."""

    BINDINGS = [
        Binding("escape,q", "dismiss", "Close"),
        Binding("r", "replay", "Replay"),
        Binding("e", "edit", "Edit & replay"),
        Binding("d", "diff", "Diff"),
    ]

    def __init__(
        self,
        tunnel: str,
        record: RequestRecord,
        replayer: Replayer | None = None,
        on_replayed: Callable[[ReplayDone], None] | None = None,
    ) -> None:
        super().__init__()
        self.tunnel = tunnel
        self.record = record
        self.replayer = replayer
        self.on_replayed = on_replayed

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("replay", "edit", "diff"):
            return self.replayer is not None and self.record.method != "TCP"
        return True

    def action_replay(self) -> None:
        self.run_worker(self._replay(None), exclusive=True, group="replay")

    def action_edit(self) -> None:
        self.run_worker(self._edit(), exclusive=True, group="replay")

    async def _edit(self) -> None:
        assert self.replayer is not None
        try:
            request, _ = await self.replayer.request_for(self.tunnel, self.record)
        except ReplayError as exc:
            self.notify(f"cannot edit: {exc}", severity="error")
            return
        if (why := request.editable()) is not None:
            self.notify(f"cannot edit this request: {why}", severity="error")
            return
        if has_controls(request.to_text()):
            # The editor draws its text as it is, and a terminal obeys the escape sequences in
            # it: a visitor's request is edited in $EDITOR, which shows them as ^[.
            self.notify(
                "cannot edit this request here: it holds control characters; "
                "use `molehill requests replay ID --edit` (opens $EDITOR)",
                severity="error",
            )
            return

        def send(edited: object) -> None:
            if edited is not None:
                self.run_worker(self._replay(edited), exclusive=True, group="replay")

        self.app.push_screen(EditRequestScreen(request), send)

    async def _replay(self, edited: object) -> None:
        assert self.replayer is not None
        self.notify("replaying to the local app…", timeout=2)
        try:
            done = await self.replayer.replay(self.tunnel, self.record, edited)  # type: ignore[arg-type]
        except (ReplayError, ResignError) as exc:
            self.notify(f"replay failed: {exc}", severity="error", timeout=8)
            return
        r = done.record
        status = str(r.status) if r.status else "no response"
        stored = f" (#{r.exchange_id})" if r.exchange_id is not None else ""
        notes = "".join(f"\n{n}" for n in done.notes)
        self.notify(f"replayed to {done.url}: {status} in {ms(r.duration_ms)}{stored}{notes}")
        if self.on_replayed is not None:
            self.on_replayed(done)

    def action_diff(self) -> None:
        assert self.replayer is not None
        diff = self.replayer.diff(self.tunnel, self.record)
        if diff is None:
            self.notify("replay it first (r): d compares its answer with the replay's")
            return
        self.app.push_screen(DiffScreen(diff))

    def compose(self) -> ComposeResult:
        r = self.record
        capture = r.capture
        status = str(r.status) if r.status else "no response"
        title = Text()
        title.append(f"{r.method} ", style="bold")
        title.append(visible(r.path))
        title.append(f"  {status}", style=f"bold {_colour(r.status)}")
        summary = Table.grid(padding=(0, 2))
        summary.add_column(style="dim")
        summary.add_column()
        summary.add_row("tunnel", Text(self.tunnel))
        summary.add_row("time", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.time)))
        summary.add_row("client", Text(visible(r.client)))
        if isinstance(r, StoredRecord):
            if r.original is not None or r.replay_of is not None:
                of = f" of #{r.replay_of}" if r.replay_of is not None else ""
                summary.add_row("replay", f"a replay{of} (d: diff with the original's answer)")
            if r.history:
                summary.add_row("from", "the capture store (secrets redacted)")
        if r.failure:
            summary.add_row("why", Text(visible(_why(r)), style="bold red"))
        summary.add_row("first byte", ms(r.ttfb_ms))
        summary.add_row("duration", ms(r.duration_ms))
        if r.app_ms is not None:
            summary.add_row(
                "local app", f"{ms(r.app_ttfb_ms)} to first byte, {ms(r.app_ms)} in all"
            )
            summary.add_row("tunnel (agent)", ms(r.overhead_ms))
        summary.add_row("sizes", f"{human_size(r.bytes_in)} in, {human_size(r.bytes_out)} out")
        failure = visible(r.failure)
        no_response = Text(f"(none: {failure})" if failure else "(not captured)", style="dim")
        with VerticalScroll(id="details-body"):
            yield Static(title, id="details-title")
            yield Static(summary)
            yield Static("Request headers", classes="section")
            yield Static(_headers_table(capture.request_headers if capture else []))
            yield Static("Request body", classes="section")
            yield Static(
                _body(capture.request_body, capture.request_headers, capture.request_truncated)
                if capture
                else Text("(not captured)", style="dim")
            )
            yield Static("Response headers", classes="section")
            answered = capture is not None and bool(capture.response_head)
            yield Static(
                _headers_table(capture.response_headers) if capture and answered else no_response
            )
            yield Static("Response body", classes="section")
            yield Static(
                _body(capture.response_body, capture.response_headers, capture.response_truncated)
                if capture and answered
                else no_response
            )
            if capture is not None and capture.messages is not None:
                websocket = capture.messages.protocol == "websocket"
                yield Static("WebSocket messages" if websocket else "Events", classes="section")
                yield MessageList(capture.messages, id="details-messages")
        yield Footer()


def _why(r: RequestRecord) -> str:
    """What the visitor got, and the failure the agent saw that caused it."""
    if r.status == 502 and not r.app_ms:
        return f"the relay answered 502: {r.failure}"
    if r.status:
        return f"the response was cut short: {r.failure}"
    return f"no response: {r.failure}"


def _colour(status: int) -> str:
    return {"2xx": "green", "3xx": "cyan", "4xx": "yellow", "5xx": "red"}.get(
        status_class(status), "magenta"
    )
