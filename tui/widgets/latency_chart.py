"""A time chart of p50 and p99 per second: one column a second, the latest on the right, on a
log scale (a slow p99 must not flatten the p50 into the floor)."""

from __future__ import annotations

import math

from rich.text import Text
from textual.events import Resize
from textual.message import Message
from textual.widget import Widget

P50_STYLE = "green"
P99_STYLE = "yellow"
_EIGHTHS = " ▁▂▃▄▅▆▇█"
AXIS = 7  # the scale's labels on the left: " 249ms "

Series = tuple[tuple[float, float] | None, ...]


def short_ms(value: float) -> str:
    """At most 6 characters: the chart's scale has little room."""
    if value < 10:
        return f"{value:.1f}ms"
    if value < 1000:
        return f"{value:.0f}ms"
    return f"{value / 1000:.1f}s"


def column_levels(
    series: Series, height: int, low: float, high: float
) -> list[tuple[int, int] | None]:
    """Each second's (p50, p99) as heights in eighths of a cell, 1..height*8 on a log scale."""
    top = height * 8
    span = math.log(high / low) if high > low else 0.0

    def level(value: float) -> int:
        if span == 0.0:
            return top
        fraction = math.log(max(value, low) / low) / span
        return max(1, min(top, round(fraction * top)))

    return [None if point is None else (level(point[0]), level(point[1])) for point in series]


def render_chart(series: Series, width: int, height: int) -> Text:
    """The chart as text: ``width`` columns (the scale included) by ``height`` rows."""
    columns = max(0, width - AXIS)
    shown = series[-columns:] if columns else ()
    present = [p for p in shown if p is not None]
    text = Text(no_wrap=True, overflow="crop")
    if not present or height < 1:
        text.append("no requests in the last minutes", style="dim")
        return text
    low = min(p[0] for p in present)
    high = max(p[1] for p in present)
    pad = (None,) * (columns - len(shown))
    levels = column_levels(pad + tuple(shown), height, low, high)
    labels = {0: short_ms(high), height - 1: short_ms(low)}
    for row in range(height):
        if row:
            text.append("\n")
        text.append(f"{labels.get(row, ''):>{AXIS - 1}} ", style="dim")
        floor = (height - 1 - row) * 8  # eighths below this row
        for point in levels:
            text.append(*_cell(point, floor))
    return text


def _cell(point: tuple[int, int] | None, floor: int) -> tuple[str, str]:
    """One cell: the p50 bar in front of the p99 bar, each drawn to its eighth."""
    if point is None:
        return " ", ""
    p50, p99 = point[0] - floor, point[1] - floor
    if p50 >= 8:
        return "█", P50_STYLE
    if p50 > 0:
        # the p50's top inside this cell; the p99 behind it fills the rest when it reaches over
        return _EIGHTHS[p50], f"{P50_STYLE} on {P99_STYLE}" if p99 >= 8 else P50_STYLE
    if p99 > 0:
        return _EIGHTHS[min(p99, 8)], P99_STYLE
    return " ", ""


class LatencyChart(Widget):
    """Shows a StatsSnapshot's ``per_second``; ``series`` is replaced whole by the pane."""

    class SpanChanged(Message):
        """The chart's width changed: it now shows this many seconds."""

        def __init__(self, seconds: int) -> None:
            super().__init__()
            self.seconds = seconds

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.series: Series = ()

    def on_resize(self, event: Resize) -> None:
        self.post_message(self.SpanChanged(max(0, event.size.width - AXIS)))

    def update_series(self, series: Series) -> None:
        if series != self.series:
            self.series = series
            self.refresh()

    @property
    def seconds_shown(self) -> int:
        """How many seconds fit across: one column each."""
        return max(0, self.size.width - AXIS)

    def render(self) -> Text:
        return render_chart(self.series, self.size.width, self.size.height)
