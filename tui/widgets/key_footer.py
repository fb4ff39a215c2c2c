"""The footer of the dashboard: as many key hints as the width holds, never one cut in half."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Footer
from textual.widgets._footer import FooterKey  # not re-exported by textual.widgets


def key_width(key: Widget) -> int:
    """Cells a key takes in the (non-compact) footer: `` key description ``."""
    if not isinstance(key, FooterKey):
        return 0
    border = 2 if key.has_class("-command-palette") else 0  # docked right, with a rule
    return len(key.key_display) + len(key.description) + 3 + border


class KeyFooter(Footer):
    """Keeps the keys whose actions come first in ``priority`` (then the others, in order)
    while they fit on the line, and shows them in their usual order. With help and quit first,
    a narrow terminal always shows them; every key is in the help screen anyway."""

    def __init__(self, priority: tuple[str, ...], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.priority = priority
        self._shown_for = 0  # the width the keys were chosen for

    def compose(self) -> ComposeResult:
        keys = list(super().compose())
        width = self.size.width or self.app.size.width
        self._shown_for = width

        def rank(index: int) -> tuple[int, int]:
            action = getattr(keys[index], "action", "")
            order = self.priority.index(action) if action in self.priority else len(self.priority)
            return order, index

        room = width
        kept: set[int] = set()
        for index in sorted(range(len(keys)), key=rank):
            if (cost := key_width(keys[index])) <= room:
                kept.add(index)
                room -= cost
        yield from (key for index, key in enumerate(keys) if index in kept)

    def on_resize(self) -> None:
        if self.size.width != self._shown_for and self.is_attached:
            self.call_after_refresh(self.recompose)
