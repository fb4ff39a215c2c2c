"""The runner package keeps the house rules: no Textual, no tui, docstrings, small files."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_runner_never_imports_textual_or_tui_and_keeps_its_files_small():
    for path in (ROOT / "runner").rglob("*.py"):
        tree = ast.parse(path.read_text())
        assert ast.get_docstring(tree), f"{path.name} has no module docstring"
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module.split(".")[0])
        assert not names & {"textual", "tui"}, f"{path.name} imports {names & {'textual', 'tui'}}"
        assert len(path.read_text().splitlines()) <= 400, path.name


def test_the_state_machine_and_wiring_are_sans_io():
    for name in ("state.py", "wiring.py"):
        text = (ROOT / "runner" / name).read_text()
        assert "import asyncio" not in text and "subprocess" not in text, name
