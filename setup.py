"""Build: pure Python by default; MOLEHILL_COMPILE=1 compiles the hot data-path modules (mypyc)."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent


def compiling() -> bool:
    return os.environ.get("MOLEHILL_COMPILE", "") not in ("", "0")


def extensions() -> list:
    if not compiling() or os.environ.get("_MOLEHILL_ASKING_REQUIRES"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        raise SystemExit(
            "MOLEHILL_COMPILE=1 needs mypy (mypyc) in the build environment: "
            "pip installs it on its own unless --no-build-isolation is given "
            "(then pip install mypy first)"
        ) from None
    modules = runpy.run_path(str(HERE / "relay" / "compiled.py"))["COMPILED_MODULES"]
    paths = [str(Path(*name.split("."))) + ".py" for name in modules]
    return mypycify(paths, opt_level="3", debug_level="1")


setup(ext_modules=extensions())
