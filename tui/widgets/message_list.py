"""The messages of one upgraded connection (WebSocket) or event stream, in request details."""

from __future__ import annotations

import time

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.timer import Timer
from textual.widgets import Static

from inspector.messages_view import preview_text
from relay.events import MessageLog, StreamMessage
from relay.terminal_text import visible

SHOWN = 200  # the newest messages shown; older ones are counted above them
REFRESH = 0.5  # seconds between looks at a log that is still filling


class MessageList(Static):
    """A live view of a :class:`MessageLog`: redrawn while the connection is open, when it grew."""

    def __init__(self, log: MessageLog, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.source = log
        self._shown: tuple[int, int, bool, str] | None = None
        self._timer: Timer | None = None

    def on_mount(self) -> None:
        self.refresh_messages()
        if not self.source.closed:
            self._timer = self.set_interval(REFRESH, self.refresh_messages)

    def refresh_messages(self) -> None:
        log = self.source
        closed = log.closed  # read first: once closed, every message is in
        state = (len(log.messages), log.dropped, closed, log.note)
        if state == self._shown:
            return
        self._shown = state
        self.update(self.render_log(log, closed))
        if closed and self._timer is not None:
            self._timer.stop()

    @staticmethod
    def render_log(log: MessageLog, closed: bool) -> Group:
        messages = log.messages[-SHOWN:]
        kept = len(log.messages)
        summary = Text(f"{kept:,} kept", style="bold")
        if log.dropped:
            summary.append(f", {log.dropped:,} not kept (over {log.cap:,})", style="yellow")
        summary.append("  · closed" if closed else "  · open", style="dim" if closed else "green")
        parts: list[object] = [summary]
        if log.note:
            parts.append(Text(log.note, style="yellow"))
        if kept > len(messages):
            parts.append(Text(f"… {kept - len(messages):,} earlier not shown", style="dim"))
        if not messages:
            parts.append(Text("(none yet)", style="dim"))
        else:
            table = Table.grid(padding=(0, 1))
            table.add_column(style="dim", no_wrap=True)  # time
            table.add_column(no_wrap=True)  # direction
            table.add_column(no_wrap=True)  # kind
            table.add_column(justify="right", no_wrap=True)  # size
            table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)  # preview
            for m in messages:
                table.add_row(*_row(m))
            parts.append(table)
        return Group(*parts)  # type: ignore[arg-type]


def _row(m: StreamMessage) -> tuple[str, Text, Text, str, Text]:
    stamp = time.strftime("%H:%M:%S", time.localtime(m.time)) + f".{int(m.time * 1000) % 1000:03d}"
    arrow = Text("→ in", style="cyan") if m.direction == "in" else Text("← out", style="magenta")
    # Text, not str: a str cell is read as markup, and an event's name is the app's to choose.
    kind = Text(visible(m.event) if m.kind == "event" else m.kind)
    if m.compressed:
        kind.append(" (deflate)")
    text = preview_text(m)
    if m.compressed and not m.preview:
        shown = Text("(compressed: no preview)", style="dim")
    elif text is None:
        shown = Text(m.preview[:24].hex(" "), style="dim")
    else:
        shown = Text(visible(text.replace("\n", "⏎")))
    return stamp, arrow, kind, f"{m.size:,} B", shown
