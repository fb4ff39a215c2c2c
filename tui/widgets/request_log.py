"""The live request log: renders only the visible rows of a bounded buffer, so 2,000 requests a
second cost the UI a few list appends, not a table rebuild."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from inspector.filters import Filter, parse
from relay.events import RequestRecord
from relay.terminal_text import visible
from tui.format import human_size, status_class
from tui.log_records import StoredRecord

STATUS_STYLES = {
    "2xx": Style(color="green"),
    "3xx": Style(color="cyan"),
    "4xx": Style(color="yellow"),
    "5xx": Style(color="red", bold=True),
    "---": Style(color="magenta"),
    "1xx": Style(color="blue"),
}
PLAIN = Style()
DIM = Style(dim=True)
CURSOR = Style(reverse=True)
MIN_PATH = 28  # the path keeps at least this many columns before SIZE and CLIENT are shown


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which rows to show: a method, a status class ("2xx".."5xx"), text in the path, and a
    query in the inspector's filter language (``status:5xx path:/api/*``; see inspector.filters).

    Build one with a query through ``LogFilter.with_query``, which raises FilterError."""

    method: str = ""
    status: str = ""
    text: str = ""
    query: str = ""
    compiled: Filter | None = field(default=None, compare=False, repr=False)

    @classmethod
    def with_query(
        cls, method: str = "", status: str = "", text: str = "", query: str = ""
    ) -> LogFilter:
        query = query.strip()
        return cls(method, status, text, query, parse(query) if query else None)

    def matches(self, tunnel: str, record: RequestRecord) -> bool:
        if self.method and record.method != self.method:
            return False
        if self.status and status_class(record.status) != self.status:
            return False
        if self.text and self.text.lower() not in record.path.lower():
            return False
        return self.compiled is None or self.compiled.matches_record(tunnel, record)

    @property
    def active(self) -> bool:
        return bool(self.method or self.status or self.text or self.query)

    def describe(self) -> str:
        parts = [p for p in (self.method, self.status) if p]
        if self.text:
            parts.append(f"path ~ {self.text!r}")
        if self.query:
            parts.append(self.query)
        return " ".join(parts) or "none"


@dataclass(frozen=True, slots=True)
class Column:
    """A column of the log before PATH, which takes the rest of the width."""

    key: str
    title: str
    width: int
    right: bool = False
    style: Style = PLAIN


TIME = Column("time", "TIME", 8, style=DIM)
METHOD = Column("method", "METHOD", 7, style=Style(bold=True))
STATUS = Column("status", "STATUS", 6, right=True)
DURATION = Column("duration", "DURATION", 8, right=True)
SIZE = Column("size", "SIZE", 7, right=True, style=DIM)
CLIENT = Column("client", "CLIENT", 15, style=DIM)
TUNNEL_STYLE = Style(color="bright_blue")

Row = tuple[str, RequestRecord]  # (tunnel key, record)


@lru_cache(maxsize=32)
def layout(width: int, tunnel_width: int | None) -> tuple[tuple[Column, ...], int]:
    """The columns that fit in ``width`` and the width left for PATH (at least 1).

    TIME, METHOD, STATUS and DURATION (and TUNNEL in the merged view) always show; SIZE then
    CLIENT are added only while the path keeps ``MIN_PATH`` columns."""
    columns = [TIME]
    if tunnel_width:
        columns.append(Column("tunnel", "TUNNEL", tunnel_width, style=TUNNEL_STYLE))
    columns += [METHOD, STATUS, DURATION]
    for extra in (SIZE, CLIENT):
        used = sum(c.width + 1 for c in columns) + extra.width + 1
        if width - used < MIN_PATH:
            break
        columns.append(extra)
    return tuple(columns), max(1, width - sum(c.width + 1 for c in columns))


class RequestLog(ScrollView, can_focus=True):
    """Rows are (tunnel, record), the newest at the bottom under a fixed header line.

    Like ``tail -f`` the log follows new rows, unless it is paused, the user scrolled up or the
    cursor is on an older row; ``end``, scrolling back to the bottom or ``follow()`` resume it.
    """

    COMPONENT_CLASSES = {"request-log--header"}
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
        self.cursor: int | None = None  # index into rows; None: the newest row
        self.filter = LogFilter()
        self.missed = 0  # rows that arrived while paused
        self.history = 0  # rows read from the capture store when the dashboard opened (dimmed)
        self.following = True  # new rows scroll into view
        self._tunnel_width = 6
        # While a redraw runs: the width and the columns, looked up once, not twice per line.
        self._frame: tuple[int, tuple[tuple[Column, ...], int]] | None = None
        self._second = (-1, "")  # the last row's second and its HH:MM:SS (most rows share it)

    def on_mount(self) -> None:
        self.anchor()  # the compositor keeps an anchored view at the bottom as rows arrive
        self.show_state()

    # -- data ------------------------------------------------------------------

    def replace(self, rows: Iterable[Row]) -> None:
        """Show these rows (already in order), applying the filter, from the newest."""
        self.rows.clear()
        self.rows.extend(r for r in rows if self.filter.matches(*r))
        self.missed = 0
        self.history = sum(1 for _, r in self.rows if isinstance(r, StoredRecord) and r.history)
        self._note_tunnels(self.rows)
        self._resized()
        self.show_state()
        self.follow()

    def add(self, rows: list[Row]) -> None:
        if self.paused:
            if missed := sum(1 for r in rows if self.filter.matches(*r)):
                self.missed += missed
                self.show_state()
            return
        before = len(self.rows)
        matching = [r for r in rows if self.filter.matches(*r)] if self.filter.active else rows
        if not matching:
            return
        self.rows.extend(matching)
        self._note_tunnels(matching)
        dropped = before + len(matching) - len(self.rows)
        if dropped and self.cursor is not None:
            # Keep the row under the cursor in place while the oldest rows fall off.
            self.cursor = max(0, self.cursor - dropped)
            self.scroll_to(y=self.scroll_offset.y - dropped, animate=False, immediate=True)
        self._resized()

    def _note_tunnels(self, rows: Iterable[Row]) -> None:
        longest = max((len(t) for t in {r[0] for r in rows}), default=0)
        self._tunnel_width = max(self._tunnel_width, min(12, longest))

    def _resized(self) -> None:
        # One line for the header; no horizontal scrolling: the path column takes the rest.
        self.virtual_size = Size(0, len(self.rows) + 1)
        self.refresh()

    def follow(self) -> None:
        """Go back to the newest row and follow new ones."""
        self.cursor = None
        self.following = True
        self.anchor()
        self.refresh()

    def release_anchor(self) -> None:
        # Textual calls this when the user scrolls up or drags the scrollbar, before it knows
        # whether the view moves; so do cursor moves. Still at the bottom: keep following.
        super().release_anchor()
        self.following = False
        self.call_after_refresh(self._follow_at_bottom)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._follow_at_bottom()

    def _follow_at_bottom(self) -> None:
        at_bottom = self.scroll_offset.y >= self.max_scroll_y
        if not self.following and self.cursor is None and at_bottom:
            self.follow()  # scrolled (back) to the bottom

    def on_resize(self) -> None:
        self.refresh()  # the columns depend on the width

    @property
    def selected(self) -> Row | None:
        if not self.rows:
            return None
        index = self.cursor if self.cursor is not None else len(self.rows) - 1
        return self.rows[index]

    def show_state(self) -> None:
        """Title the box with what it shows: paused, filtered."""
        title = Text("requests")
        if self.history:
            title.append(f" · {self.history} earlier from history (dim)", "dim")
        if self.paused:
            title.append(" · paused" + (f", {self.missed} new" if self.missed else ""), "yellow")
        if self.filter.active:
            title.append(f" · filter: {self.filter.describe()}", "yellow")
        self.border_title = title

    def watch_paused(self, paused: bool) -> None:
        self.show_state()

    # -- rendering ------------------------------------------------------------------

    def _layout(self) -> tuple[tuple[Column, ...], int]:
        width = self.scrollable_content_region.width
        return layout(width, self._tunnel_width if self.show_tunnel else None)

    def header(self) -> str:
        """Column titles matching the rows' layout."""
        columns, _ = self._layout()
        cells = [f"{c.title:>{c.width}}" if c.right else f"{c.title:<{c.width}}" for c in columns]
        return " ".join([*cells, "PATH"])

    def render_lines(self, crop: Region) -> list[Strip]:
        self._frame = (self.scrollable_content_region.width, self._layout())
        try:
            return super().render_lines(crop)
        finally:
            self._frame = None

    def render_line(self, y: int) -> Strip:
        width = self._frame[0] if self._frame else self.scrollable_content_region.width
        if y == 0:
            style = self.get_component_rich_style("request-log--header", partial=True)
            return Strip([Segment(self.header(), style)]).crop_extend(0, width, None)
        index = self.scroll_offset.y + y - 1
        if index >= len(self.rows):
            return Strip.blank(width)
        tunnel, record = self.rows[index]
        strip = Strip(self._row_segments(tunnel, record)).crop_extend(0, width, None)
        if index == (self.cursor if self.cursor is not None else -1) and self.has_focus:
            strip = strip.apply_style(CURSOR)
        elif index == self.cursor:
            strip = strip.apply_style(Style(bgcolor="grey23"))
        return strip

    def _clock(self, second: int) -> str:
        if second != self._second[0]:
            self._second = (second, time.strftime("%H:%M:%S", time.localtime(second)))
        return self._second[1]

    def _row_segments(self, tunnel: str, record: RequestRecord) -> list[Segment]:
        columns, path_width = self._frame[1] if self._frame else self._layout()
        klass = status_class(record.status)
        cells = {
            "time": self._clock(math.floor(record.time)),
            "tunnel": tunnel,
            "method": record.method,
            "status": str(record.status) if record.status else "---",
            "duration": _ms(record.duration_ms),
            "size": human_size(record.bytes_out),
            "client": visible(record.client),
        }
        segments = []
        for c in columns:
            text = cells[c.key][: c.width]
            text = f"{text:>{c.width}} " if c.right else f"{text:<{c.width}} "
            style = STATUS_STYLES.get(klass, DIM) if c.key == "status" else c.style
            segments.append(Segment(text, style))
        path = visible(record.path)  # relays pass printable ASCII only; a store may hold anything
        stored = record if isinstance(record, StoredRecord) else None
        if stored is not None and (stored.original is not None or stored.replay_of is not None):
            path = f"↻ {path}"  # a replay
        if len(path) > path_width:
            path = path[: path_width - 1] + "…"
        segments.append(Segment(path))
        if stored is not None and stored.history:  # read from the store on open: dimmed
            return [Segment(segment.text, DIM) for segment in segments]
        return segments

    # -- actions ------------------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        if not self.rows:
            return
        current = self.cursor if self.cursor is not None else len(self.rows) - 1
        target = max(0, min(len(self.rows) - 1, current + delta))
        if target == len(self.rows) - 1 and delta > 0:
            self.follow()  # moving onto the newest row goes back to following new traffic
            return
        self.cursor = target
        self.release_anchor()
        self._show_cursor()

    def action_first(self) -> None:
        if self.rows:
            self.cursor = 0
            self.release_anchor()
            self._show_cursor()

    def action_last(self) -> None:
        self.follow()

    def _show_cursor(self) -> None:
        index = self.cursor if self.cursor is not None else len(self.rows) - 1
        top = self.scroll_offset.y
        height = self.scrollable_content_region.height - 1  # below the header
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
        index = self.scroll_offset.y + event.y - 1
        if event.y >= 1 and 0 <= index < len(self.rows):
            self.cursor = index
            self.release_anchor()
            self.refresh()
            if event.chain >= 2:
                self.action_choose()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()


def _ms(ms: float) -> str:
    if ms < 10:
        return f"{ms:.2f}ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    return f"{ms / 1000:.1f}s"
