"""The hot data-path modules a compiled build turns into C (mypyc), and which this process runs so.

``MOLEHILL_COMPILE=1 pip install .`` compiles :data:`COMPILED_MODULES`; a plain install (and every
editable one) runs them as Python. Both builds run the same source and pass the same tests: a
compiled module that cannot load (another Python, say) is skipped by the import system, and its
``.py`` beside it runs instead.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util

# HTTP framing, the wire session and its decoder, and the agent's observer: most of the
# interpreter's share of a request (benchmarks/README.md, "A compiled data path"). Modules whose
# classes are subclassed outside this list (asyncio protocols, dataclass settings) are not here:
# a compiled class cannot be subclassed by Python code.
COMPILED_MODULES = (
    "relay.http.chunked",
    "relay.http.forwarded",
    "relay.http.framing",
    "relay.http.heads",
    "relay.http.names",
    "relay.http.plain",
    "relay.http.targets",
    "relay.wire.codec",
    "relay.wire.decoding",
    "relay.wire.session",
    "relay.wire.stream",
    "relay.agent.observe",
)


def compiled_now() -> list[str]:
    """Those of :data:`COMPILED_MODULES` that import from a compiled extension here."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    out = []
    for name in COMPILED_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None and spec.origin.endswith(suffixes):
            out.append(name)
    return out


def build_name() -> str:
    """``compiled`` (all of them), ``pure Python`` (none), or how many of them are compiled."""
    done = len(compiled_now())
    if done == len(COMPILED_MODULES):
        return "compiled"
    return "pure Python" if done == 0 else f"partly compiled ({done}/{len(COMPILED_MODULES)})"
