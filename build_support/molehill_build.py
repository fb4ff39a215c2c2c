"""PEP 517 backend: setuptools, with mypy added to the build's needs when MOLEHILL_COMPILE=1."""

from __future__ import annotations

import os
from typing import Any

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F403 (every hook setuptools has, unchanged)

MYPY = "mypy>=1.10"


def _compiling() -> bool:
    return os.environ.get("MOLEHILL_COMPILE", "") not in ("", "0")


def _setuptools_requires(hook: Any, config_settings: Any) -> list[str]:
    # setuptools runs setup.py to learn its own needs: before mypy is there to compile with.
    os.environ["_MOLEHILL_ASKING_REQUIRES"] = "1"
    try:
        return list(hook(config_settings))
    finally:
        del os.environ["_MOLEHILL_ASKING_REQUIRES"]


def get_requires_for_build_wheel(config_settings: Any = None) -> list[str]:
    requires = _setuptools_requires(build_meta.get_requires_for_build_wheel, config_settings)
    return [*requires, MYPY] if _compiling() else requires


def get_requires_for_build_editable(config_settings: Any = None) -> list[str]:
    if _compiling():
        # The compiled modules would sit beside their .py files and run instead of them: an edit
        # would silently do nothing until the next build.
        raise SystemExit(
            "MOLEHILL_COMPILE=1 is for `pip install .` (not -e): an editable install would keep "
            "running the compiled modules after you edit their source. Install without -e, or "
            "unset MOLEHILL_COMPILE for an editable (pure Python) install."
        )
    return _setuptools_requires(build_meta.get_requires_for_build_editable, config_settings)
