"""References to other profiles in [env] values ("{backend.url}"): parsing, checks, cycles."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FIELDS = ("url", "host", "port")
# {name.field}; "{{" and "}}" stand for literal braces.
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_REF = re.compile(r"([a-z0-9-]+)\.([a-z]+)")


class RefError(ValueError):
    """A template that is not text with {profile.field} references."""


@dataclass(frozen=True, slots=True)
class Ref:
    """One {profile.field} in a value."""

    profile: str
    field: str


def parse_template(text: str) -> list[str | Ref]:
    """`text` as literal pieces and references; RefError says what is wrong and how to fix it."""
    pieces: list[str | Ref] = []
    last = 0
    for match in _TOKEN.finditer(text):
        pieces.append(text[last : match.start()])
        last = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            pieces.append(token[0])
            continue
        if token in ("{", "}"):
            raise RefError(f"a lone {token!r}; write {token * 2!r} for a literal brace")
        ref = _REF.fullmatch(match.group(1) or "")
        if ref is None or ref.group(2) not in FIELDS:
            raise RefError(
                f"{token} is not a reference; use {{PROFILE.url}}, {{PROFILE.host}} or "
                "{PROFILE.port} (write {{ and }} for literal braces)"
            )
        pieces.append(Ref(ref.group(1), ref.group(2)))
    pieces.append(text[last:])
    return [p for p in pieces if p != ""]


def references(env: Mapping[str, str]) -> list[Ref]:
    """Every reference in an [env] table (values assumed valid), in order."""
    found = []
    for text in env.values():
        found += [p for p in parse_template(text) if isinstance(p, Ref)]
    return found


def depends_on(env: Mapping[str, str]) -> list[str]:
    """The profiles an [env] table refers to, each once, in order."""
    return list(dict.fromkeys(ref.profile for ref in references(env)))


def reference_problems(envs: Mapping[str, Mapping[str, str]]) -> list[tuple[str, str]]:
    """(profile, why) for each reference to an unknown profile and each cycle of references."""
    problems = []
    graph = {name: depends_on(env) for name, env in envs.items()}
    for name, needed in graph.items():
        for other in needed:
            if other == name:
                problems.append(
                    (name, f"refers to its own URL ({{{name}...}}); it cannot wait for itself")
                )
            elif other not in graph:
                known = ", ".join(graph) or "none"
                problems.append(
                    (name, f"refers to profile '{other}', which does not exist (profiles: {known})")
                )
    for cycle in _cycles(graph):
        path = " -> ".join([*cycle, cycle[0]])
        problems.append(
            (
                cycle[0],
                f"profiles '{cycle[0]}' and '{cycle[1]}' refer to each other's URLs "
                f"({path}); each would wait for the other: remove one reference",
            )
        )
    return problems


def _cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Each cycle of two or more profiles once, starting at its first profile in file order."""
    order = {name: i for i, name in enumerate(graph)}
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def walk(path: list[str]) -> None:
        for nxt in graph.get(path[-1], ()):
            if nxt == path[0] and len(path) > 1:
                key = frozenset(path)
                if key not in seen:
                    seen.add(key)
                    found.append(path[:])
            elif nxt in graph and nxt not in path and order[nxt] > order[path[0]]:
                walk([*path, nxt])

    for start in graph:
        walk([start])
    return found


def start_order(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """Names with the profiles each refers to before it (graph assumed acyclic)."""
    done: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        for other in graph.get(name, ()):
            if other in graph:
                visit(other)
        done.append(name)

    for name in graph:
        visit(name)
    return done
