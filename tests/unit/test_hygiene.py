"""House rules checked by the suite: import boundaries, sans-I/O protocol, docstrings, lint."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", ["relay", "profiles"])
def test_core_packages_never_import_textual_or_tui(package):
    for path in (ROOT / package).rglob("*.py"):
        bad = _imports(path) & {"textual", "tui"}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_headless_agent_does_not_load_textual():
    code = "import sys, relay.agent, relay.server, tui.cli; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_protocol_is_sans_io():
    assert not _imports(ROOT / "relay" / "protocol.py") & {"asyncio", "socket", "websockets"}


def test_every_module_has_a_docstring():
    missing = []
    for package in ("relay", "profiles", "tui"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            if path.stat().st_size and ast.get_docstring(tree) is None:
                missing.append(str(path.relative_to(ROOT)))
    assert not missing, f"modules without a docstring: {missing}"


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is a test dependency: pip install -e '.[test]'"
    out = subprocess.run([ruff, "check", "."], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    out = subprocess.run([ruff, "format", "--check", "."], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, "run `ruff format .`:\n" + out.stdout + out.stderr
