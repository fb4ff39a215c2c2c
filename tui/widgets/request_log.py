"""The live request log: renders only the visible rows of a bounded buffer, so 2,000 requests a
second cost the UI a few list appends, not a table rebuild."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from relay.events import RequestRecord
from tui.format import human_size, status_class

STATUS_STYLES = {
    "2xx": Style(color="green"),
    "3xx": Style(color="cyan"),
    "4xx": Style(color="yellow"),
    "5xx": Style(color="red", bold=True),
    "---": Style(color="magenta"),
    "1xx": Style(color="blue"),
}
DIM = Style(dim=True)
CURSOR = Style(reverse=True)


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which rows to show: a method, a status class ("2xx".."5xx"), text in the path."""

    method: str = ""
    status: str = ""
    text: str = ""

    def matches(self, record: RequestRecord) -> bool:
        if self.method and record.method != self.method:
            return False
        if self.status and status_class(record.status) != self.status:
            return False
        return not self.text or self.text.lower() in record.path.lower()

    @property
    def active(self) -> bool:
        return bool(self.method or self.status or self.text)

    def describe(self) -> str:
        parts = [p for p in (self.method, self.status) if p]
        if self.text:
            parts.append(f"path ~ {self.text!r}")
        return " ".join(parts) or "none"


Row = tuple[str, RequestRecord]  # (tunnel key, record)


class RequestLog(ScrollView, can_focus=True):
    """Rows are (tunnel, record); the newest is at the bottom and followed unless paused."""

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "cursor(-20)", show=False),
        Binding("pagedown", "cursor(20)", show=False),
        Binding("home", "first", show=False),
        Binding("end", "last", show=False),
        Binding("enter", "choose", "Details"),
    ]

    class RequestChosen(Message):
        """The user asked for a request's details."""

        def __init__(self, tunnel: str, record: RequestRecord) -> None:
            super().__init__()
            self.tunnel = tunnel
            self.record = record

    paused: reactive[bool] = reactive(False)
    show_tunnel: reactive[bool] = reactive(False)

    def __init__(self, capacity: int = 5000, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: deque[Row] = deque(maxlen=capacity)
        self.cursor: int | None = None  # index into rows; None follows the newest
        self.filter = LogFilter()
        self.missed = 0  # rows that arrived while paused

    # -- data ------------------------------------------------------------------

    def replace(self, rows: Iterable[Row]) -> None:
        """Show these rows (already in order), applying the filter."""
        self.rows.clear()
        self.rows.extend(r for r in rows if self.filter.matches(r[1]))
        self.missed = 0
        if self.cursor is not None and self.cursor >= len(self.rows):
            self.cursor = None
        self._resized()

    def add(self, rows: list[Row]) -> None:
        if self.paused:
            self.missed += sum(1 for r in rows if self.filter.matches(r[1]))
            return
        before = len(self.rows)
        matching = [r for r in rows if self.filter.matches(r[1])] if self.filter.active else rows
        if not matching:
            return
        self.rows.extend(matching)
        dropped = before + len(matching) - len(self.rows)
        if self.cursor is not None:
            self.cursor = max(0, self.cursor - dropped)
        self._resized()

    def _resized(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.rows))
        if self.cursor is None and not self.paused:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    @property
    def selected(self) -> Row | None:
        if not self.rows:
            return None
        index = self.cursor if self.cursor is not None else len(self.rows) - 1
        return self.rows[index]

    def header(self) -> str:
        """Column titles matching the rows' layout."""
        tunnel = f"{'TUNNEL':<12} " if self.show_tunnel else ""
        return (
            f"{'TIME':<8} {tunnel}{'METHOD':<7} {'STA':>3} {'DURATION':>8} {'SIZE':>7} "
            f"{'CLIENT':<15} PATH"
        )

    # -- rendering ------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        _, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        if index >= len(self.rows):
            return Strip.blank(width)
        tunnel, record = self.rows[index]
        segments = self._row_segments(tunnel, record)
        strip = Strip(segments).crop_extend(0, width, None)
        if index == (self.cursor if self.cursor is not None else -1) and self.has_focus:
            strip = strip.apply_style(CURSOR)
        elif index == self.cursor:
            strip = strip.apply_style(Style(bgcolor="grey23"))
        return strip

    def _row_segments(self, tunnel: str, record: RequestRecord) -> list[Segment]:
        klass = status_class(record.status)
        status = str(record.status) if record.status else "---"
        stamp = time.strftime("%H:%M:%S", time.localtime(record.time))
        segments = [Segment(f"{stamp} ", DIM)]
        if self.show_tunnel:
            segments.append(Segment(f"{tunnel[:12]:<12} ", Style(color="bright_blue")))
        segments += [
            Segment(f"{record.method[:7]:<7} ", Style(bold=True)),
            Segment(f"{status:>3} ", STATUS_STYLES.get(klass, DIM)),
            Segment(f"{_ms(record.duration_ms):>8} ", Style()),
            Segment(f"{human_size(record.bytes_out):>7} ", DIM),
            Segment(f"{record.client[:15]:<15} ", DIM),
            Segment(record.path, Style()),
        ]
        return segments

    # -- actions ------------------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        if not self.rows:
            return
        current = self.cursor if self.cursor is not None else len(self.rows) - 1
        target = max(0, min(len(self.rows) - 1, current + delta))
        # Moving onto the newest row goes back to following new traffic.
        self.cursor = None if target == len(self.rows) - 1 and delta > 0 else target
        self._show_cursor()

    def action_first(self) -> None:
        if self.rows:
            self.cursor = 0
            self._show_cursor()

    def action_last(self) -> None:
        self.cursor = None
        self._resized()

    def _show_cursor(self) -> None:
        index = self.cursor if self.cursor is not None else len(self.rows) - 1
        top = self.scroll_offset.y
        height = self.size.height
        if index < top:
            self.scroll_to(y=index, animate=False, immediate=True)
        elif index >= top + height:
            self.scroll_to(y=index - height + 1, animate=False, immediate=True)
        self.refresh()

    def action_choose(self) -> None:
        row = self.selected
        if row is not None:
            self.post_message(self.RequestChosen(*row))

    def on_click(self, event: Click) -> None:
        index = self.scroll_offset.y + event.y
        if 0 <= index < len(self.rows):
            self.cursor = index
            self.refresh()
            if event.chain >= 2:
                self.action_choose()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def watch_paused(self, paused: bool) -> None:
        if not paused:
            self.cursor = None


def _ms(ms: float) -> str:
    if ms < 10:
        return f"{ms:.2f}ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    return f"{ms / 1000:.1f}s"
