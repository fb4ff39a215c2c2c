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


@pytest.mark.parametrize("package", ["relay", "profiles", "inspector", "runner"])
def test_core_packages_never_import_textual_or_tui(package):
    for path in (ROOT / package).rglob("*.py"):
        bad = _imports(path) & {"textual", "tui"}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_headless_agent_does_not_load_textual():
    code = "import sys, relay.agent, relay.server, tui.cli; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("layer", ["wire", "http"])
def test_wire_and_http_layers_are_sans_io(layer):
    for path in (ROOT / "relay" / layer).rglob("*.py"):
        bad = _imports(path) & {"asyncio", "socket", "websockets", "selectors", "ssl"}
        assert not bad, f"{path.relative_to(ROOT)} does I/O: imports {bad}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_imports(path: Path, known: set[str]) -> set[str]:
    """The relay modules ``path`` imports when it runs (``if TYPE_CHECKING:`` blocks excluded)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module in known:
                found.add(node.module)
            for alias in node.names:
                if f"{node.module}.{alias.name}" in known:
                    found.add(f"{node.module}.{alias.name}")
    return found


def _relay_import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in (ROOT / "relay").rglob("*.py")}
    known = set(paths)
    return {name: _runtime_imports(path, known) - {name} for name, path in paths.items()}


def test_relay_import_graph_has_no_cycles():
    graph = _relay_import_graph()
    # A package's __init__ re-exporting its own modules is not a cycle between layers.
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not d.startswith(name + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep) :], dep]
                raise AssertionError("import cycle in relay/: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


# Each layer may import only the layers below it (see docs/architecture.md).
_LAYERS = {
    "relay.wire": set(),
    "relay.http": set(),
    "relay.transport": {"relay.wire"},
    "relay.cluster": {"relay.wire", "relay.http", "relay.transport"},
    "relay.server": {"relay.wire", "relay.http", "relay.transport", "relay.cluster"},
    "relay.agent": {
        "relay.wire",
        "relay.http",
        "relay.transport",
        "relay.events",
        "relay.terminal_text",
    },
}
_LEAVES = ["relay.events", "relay.terminal_text"]  # modules that import no other of relay's


@pytest.mark.parametrize("layer", sorted(_LAYERS))
def test_relay_layers_import_only_layers_below(layer):
    allowed = _LAYERS[layer] | {layer, "relay"}
    for name, deps in _relay_import_graph().items():
        if name != layer and not name.startswith(layer + "."):
            continue
        for dep in deps:
            top = next((lay for lay in [*_LAYERS, *_LEAVES] if dep.startswith(lay)), dep)
            assert top in allowed, f"{name} imports {dep}: {layer} may use only {sorted(allowed)}"


def test_every_module_has_a_docstring():
    missing = []
    for package in ("relay", "profiles", "tui", "inspector", "runner"):
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
