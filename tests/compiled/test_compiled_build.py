"""The compiled build (MOLEHILL_COMPILE=1, mypyc): it builds, loads, and passes the core's tests.

The README's test command runs everything on the pure-Python modules (an editable install); this
test compiles a copy of the tree and runs the tests of the compiled modules' code against it:
the wire session and decoder, the HTTP framing (the h11 differential included), the relay and
agent over real sockets, the hostile-input suites. Compiled code checks declared types at run
time, so an annotation that lies fails here, not in a user's relay.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.support.cli import require_program

ROOT = Path(__file__).resolve().parents[2]
CORE_TESTS = ["tests/unit", "tests/relay", "tests/security", "tests/reliability/test_fuzz.py"]
SKIPPED = shutil.ignore_patterns(
    ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "*.so"
)


def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(tree), MOLEHILL_COMPILE="1")
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    return env


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_compiled_build_passes_the_core_tests(tmp_path):
    require_program("gcc")
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        message = "Python's headers (Python.h) are missing: install python3-dev"
        pytest.fail(message) if os.environ.get("CI") == "true" else pytest.skip(message)
    tree = tmp_path / "molehill"
    shutil.copytree(ROOT, tree, ignore=SKIPPED)
    env = _env(tree)
    built = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]

    which = subprocess.run(
        [sys.executable, "-c", "from relay.compiled import build_name; print(build_name())"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert which.stdout.strip() == "compiled", which.stdout + which.stderr

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *CORE_TESTS],
        cwd=tree, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    summary = tests.stdout.strip().splitlines()[-1:] or [tests.stderr[-500:]]
    assert tests.returncode == 0, tests.stdout[-6000:] + tests.stderr[-2000:]
    assert " passed" in summary[0] and "failed" not in summary[0], summary
