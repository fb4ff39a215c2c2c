"""A Static for text that is set a few times a second: redrawn only when the text changes, and
the screen laid out again only when the text's size may have changed.

``Static.update`` lays out the whole screen by default; the dashboard updated its relay bar, the
tunnel's line and the latency figures on every refresh from the tunnels (four a second), so
every refresh re-arranged and re-measured every widget: under load that layout work was the
larger part of the UI thread's time, on the core the tunnels share with it.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import Static


class SteadyStatic(Static):
    """Use ``show(text)`` instead of ``update``."""

    _shown: Text | None = None
    _shape: tuple[int, int] = (0, 0)  # lines and the widest line of the text shown

    def show(self, text: Text) -> None:
        """Show ``text``: nothing happens when it is what is shown already."""
        if self._shown is not None and _same(text, self._shown):
            return
        shape = _shape(text)
        layout = self._shown is None or self._needs_layout(shape)
        self._shown, self._shape = text, shape
        self.update(text, layout=layout)

    def _needs_layout(self, shape: tuple[int, int]) -> bool:
        lines, widest = shape
        if lines != self._shape[0]:
            return True  # a height that follows the text changes
        width = self.styles.width
        if width is not None and width.is_auto:
            return widest != self._shape[1]  # so does a width that follows it
        # A width given by the container: the height changes only if wrapping does.
        room = self.content_region.width
        return widest > room or self._shape[1] > room


def _same(a: Text, b: Text) -> bool:
    """Draws the same (Text's own == compares characters and spans, not the base style)."""
    return (
        a.plain == b.plain
        and a.spans == b.spans
        and a.style == b.style
        and (a.justify, a.overflow, a.no_wrap) == (b.justify, b.overflow, b.no_wrap)
    )


def _shape(text: Text) -> tuple[int, int]:
    lines = text.plain.split("\n")
    return len(lines), max(cell_len(line) for line in lines)
