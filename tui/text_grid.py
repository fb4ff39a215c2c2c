"""Columns of short cells as one rich Text, laid out as ``Table.grid(padding=(0, 1))`` lays them.

The dashboard redraws its figures a few times a second under load; a rich Table there cost
about half of each redraw (it is measured for the layout, then rendered, cell by cell through
Padding objects). A Text of the same characters and styles costs a small fraction of that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text


@dataclass(frozen=True, slots=True)
class GridColumn:
    """How a column's cells are drawn: right-aligned or not, and their style."""

    right: bool = False
    style: str = ""


def grid_text(columns: Sequence[GridColumn], rows: Sequence[Sequence[str]]) -> Text:
    """The rows as lines: each column as wide as its widest cell, one space between columns
    (in the column's style, as a grid's padding is), no space after the last. Every row must
    have a cell for every column (ValueError otherwise)."""
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"a row of {len(row)} cells for {len(columns)} columns: {row!r}")
    widths = [max((cell_len(row[i]) for row in rows), default=0) for i in range(len(columns))]
    last = len(columns) - 1
    if widths:
        widths[last] = max(1, widths[last])  # as a grid draws an empty last column
    text = Text(end="")
    for number, row in enumerate(rows):
        if number:
            text.append("\n")
        for i, (column, cell) in enumerate(zip(columns, row, strict=True)):
            pad = " " * (widths[i] - cell_len(cell))
            gap = " " if i < last else ""
            text.append(pad + cell + gap if column.right else cell + pad + gap, column.style)
    return text
