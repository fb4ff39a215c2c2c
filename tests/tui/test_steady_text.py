"""The latency figures as a Text grid (the same lines a rich Table.grid draws, at a fraction of
its cost) and SteadyStatic (redraw only on change, lay out only when the size may change)."""

from __future__ import annotations

import random

import pytest
from rich.console import Console
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import Vertical

from tui.text_grid import GridColumn, grid_text
from tui.widgets.steady_static import SteadyStatic

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
COLUMNS = (
    GridColumn(style="dim"),
    GridColumn(right=True),
    GridColumn(right=True),
    GridColumn(style="dim"),
    GridColumn(right=True),
)


def lines(renderable: object, width: int = 200) -> list[list[tuple[str, Style]]]:
    """What a terminal shows: each line's characters with their styles."""
    console = Console(width=width)
    rendered = console.render_lines(renderable, console.options, pad=False)
    return [[(ch, seg.style or Style()) for seg in line for ch in seg.text] for line in rendered]


def table_of(columns: tuple[GridColumn, ...], rows: list[tuple[str, ...]]) -> Table:
    table = Table.grid(padding=(0, 1))
    for column in columns:
        table.add_column(style=column.style or None, justify="right" if column.right else "left")
    for row in rows:
        table.add_row(*row)
    return table


def test_the_grid_draws_what_a_table_grid_draws():
    rows = [
        ("", "app", "tunnel", "req/s", "2,031.5"),
        ("p50", "2.94 ms", "0.16 ms", "4xx", "14.3%"),
        ("p99", "237 ms", "13 ms", "5xx", "0.0%"),
        ("in/out", "3.7KB", "148.2KB", "no resp", "0.0%"),
        ("RTT", "-", "2 conns", "reqs", "21"),
    ]
    assert lines(grid_text(COLUMNS, rows)) == lines(table_of(COLUMNS, rows))


def test_random_cells_and_widths_agree_with_the_table():
    rng = random.Random(12)
    alphabet = "ab 1.%/-é→"
    for _ in range(200):
        count = rng.randint(1, 5)
        columns = tuple(
            GridColumn(right=rng.random() < 0.5, style=rng.choice(["", "dim", "bold red"]))
            for _ in range(count)
        )
        rows = [
            tuple("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9))) for _ in columns)
            for _ in range(rng.randint(1, 6))
        ]
        # Cells never start or end with a space here: a Table strips nothing, but a Text of
        # spaces only would be ambiguous to compare.
        rows = [tuple(cell.strip() for cell in row) for row in rows]
        assert lines(grid_text(columns, rows)) == lines(table_of(columns, rows)), rows


def test_no_rows_and_a_row_of_the_wrong_length():
    assert grid_text(COLUMNS, []).plain == ""
    with pytest.raises(ValueError):
        grid_text(COLUMNS, [("only", "three", "cells")])


class Counting(SteadyStatic):
    """Counts what reaches Textual: updates, and of those the ones that ask for a layout."""

    updates = 0
    layouts = 0

    def update(self, content="", *, layout: bool = True) -> None:
        self.updates += 1
        self.layouts += layout
        super().update(content, layout=layout)


class Holder(App):
    CSS = "#fixed { width: 30; } #auto { width: auto; }"

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Counting(id="fill")
            yield Counting(id="fixed")
            yield Counting(id="auto")


@pytest.mark.parametrize("size", SIZES)
async def test_steady_static_redraws_only_changes_and_lays_out_only_for_a_new_size(size):
    app = Holder()
    async with app.run_test(size=size) as pilot:
        fill = app.query_one("#fill", Counting)
        fill.show(Text("req/s 10.0"))
        await pilot.pause()
        assert (fill.updates, fill.layouts) == (1, 1)  # the first text: its size is new
        fill.show(Text("req/s 10.0"))
        assert fill.updates == 1  # the same text: nothing to do
        fill.show(Text("req/s 12.5"))
        fill.show(Text("req/s 1,312.5"))  # wider, but the width is the container's
        await pilot.pause()
        assert (fill.updates, fill.layouts) == (3, 1)
        assert "1,312.5" in str(fill.render())
        fill.show(Text("req/s 1,312.5", style="bold"))  # a new style is a change
        assert (fill.updates, fill.layouts) == (4, 1)
        fill.show(Text("req/s 9\nerrors 2"))  # one more line: its height changes
        await pilot.pause()
        assert (fill.updates, fill.layouts) == (5, 2)
        assert fill.size.height == 2

        auto = app.query_one("#auto", Counting)
        auto.show(Text("abc"))
        auto.show(Text("xyz"))
        auto.show(Text("abcdef"))  # its width follows the text
        await pilot.pause()
        assert (auto.updates, auto.layouts) == (3, 2)
        assert auto.size.width == 6

        fixed = app.query_one("#fixed", Counting)
        fixed.show(Text("short"))
        await pilot.pause()
        fixed.show(Text("x" * 40))  # wider than its 30 columns: it wraps to two lines
        await pilot.pause()
        assert fixed.layouts == 2
        assert fixed.size.height == 2
        fixed.show(Text("y" * 40))  # still wrapped: may wrap differently, lay out again
        fixed.show(Text("short"))  # back to one line
        await pilot.pause()
        assert fixed.layouts == 4
        assert fixed.size.height == 1
