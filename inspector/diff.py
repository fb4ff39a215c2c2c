"""The difference between two exchanges' responses: status, headers, and the body (JSON by path,
text as a unified diff)."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from inspector.model import StoredExchange

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_ABSENT = object()
MAX_CHANGES = 1000  # body changes listed at most; more are counted


@dataclass(slots=True)
class Change:
    """One difference: ``kind`` is "added", "removed" or "changed"; ``where`` a header name or a
    JSON path such as ``items[3].price``."""

    kind: str
    where: str
    old: Any = None
    new: Any = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "where": self.where, "old": self.old, "new": self.new}

    def line(self) -> str:
        if self.kind == "added":
            return f"+ {self.where}: {_show(self.new)}"
        if self.kind == "removed":
            return f"- {self.where}: {_show(self.old)}"
        return f"~ {self.where}: {_show(self.old)} -> {_show(self.new)}"


@dataclass(slots=True)
class ResponseDiff:
    """How response ``b`` differs from response ``a``."""

    a: int
    b: int
    status: tuple[int, int]
    headers: list[Change] = field(default_factory=list)
    body_kind: str = "same"  # "same", "json", "text" or "binary"
    body: list[Change] = field(default_factory=list)  # for JSON bodies
    text: list[str] = field(default_factory=list)  # unified diff lines, for text bodies
    more: int = 0  # body changes beyond MAX_CHANGES
    notes: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.status[0] == self.status[1] and not self.headers and self.body_kind == "same"

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "same": self.same,
            "status": {"a": self.status[0], "b": self.status[1]},
            "headers": [c.to_json() for c in self.headers],
            "body": {
                "kind": self.body_kind,
                "changes": [c.to_json() for c in self.body],
                "unified": self.text,
                "more": self.more,
            },
            "notes": self.notes,
        }

    def lines(self) -> list[str]:
        out = [f"responses of #{self.a} and #{self.b}"]
        if self.same:
            return [*out, "no difference: same status, headers and body", *self.notes]
        a, b = self.status
        out.append(f"status: {a} -> {b}" if a != b else f"status: {a} (same)")
        if self.headers:
            out.append("headers:")
            out += ["  " + c.line() for c in self.headers]
        else:
            out.append("headers: same")
        if self.body_kind == "same":
            out.append("body: same")
        elif self.body_kind == "binary":
            out.append("body: differs (binary; compare with `molehill requests show`)")
        elif self.body_kind == "json":
            out.append("body (JSON):")
            out += ["  " + c.line() for c in self.body]
        else:
            out.append("body:")
            out += self.text
        if self.more:
            out.append(f"  ... and {self.more} more changes")
        return out + self.notes


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def diff_headers(a: list[tuple[str, str]], b: list[tuple[str, str]]) -> list[Change]:
    """Added, removed and changed headers (names any case; repeats compared as lists)."""

    def grouped(headers: list[tuple[str, str]]) -> dict[str, tuple[str, list[str]]]:
        out: dict[str, tuple[str, list[str]]] = {}
        for name, value in headers:
            out.setdefault(name.lower(), (name, []))[1].append(value)
        return out

    old, new = grouped(a), grouped(b)
    changes = []
    for key, (name, values) in old.items():
        if key not in new:
            changes.append(Change("removed", name, _one(values)))
        elif new[key][1] != values:
            changes.append(Change("changed", name, _one(values), _one(new[key][1])))
    changes += [Change("added", name, new=_one(v)) for k, (name, v) in new.items() if k not in old]
    return changes


def _one(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def diff_json(a: Any, b: Any, path: str = "") -> list[Change]:
    """Changes from ``a`` to ``b`` by path (``items[3].price``); lists compared by position."""
    changes: list[Change] = []
    _walk(a, b, path, changes)
    return changes


def _walk(a: Any, b: Any, path: str, out: list[Change]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a:
            where = _key(path, key)
            if key not in b:
                out.append(Change("removed", where, a[key]))
            else:
                _walk(a[key], b[key], where, out)
        out += [Change("added", _key(path, k), new=b[k]) for k in b if k not in a]
    elif isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            where = f"{path}[{i}]"
            if i >= len(b):
                out.append(Change("removed", where, a[i]))
            elif i >= len(a):
                out.append(Change("added", where, new=b[i]))
            else:
                _walk(a[i], b[i], where, out)
    elif a != b or type(a) is not type(b):
        out.append(Change("changed", path or "(whole body)", a, b))


def _key(path: str, key: str) -> str:
    if _IDENTIFIER.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _json(data: bytes) -> tuple[bool, Any]:
    try:
        return True, json.loads(data)
    except (ValueError, RecursionError):
        return False, None


def diff_responses(a: StoredExchange, b: StoredExchange) -> ResponseDiff:
    """How ``b``'s response differs from ``a``'s."""
    result = ResponseDiff(a.id, b.id, (a.status, b.status))
    result.headers = diff_headers(a.response_headers, b.response_headers)
    body_a, body_b = a.response_body, b.response_body
    for e, body in ((a, body_a), (b, body_b)):
        if body.truncated:
            result.notes.append(f"note: #{e.id}'s body was cut at {len(body.data)} bytes")
    if body_a.data == body_b.data:
        return result
    ok_a, json_a = _json(body_a.data)
    ok_b, json_b = _json(body_b.data)
    text_a, text_b = body_a.text(), body_b.text()
    if ok_a and ok_b:
        result.body_kind = "json"
        changes = diff_json(json_a, json_b)
        result.body, result.more = changes[:MAX_CHANGES], max(0, len(changes) - MAX_CHANGES)
        if not changes:  # the same values, written differently (spaces, key order)
            result.notes.append("note: the JSON bodies hold the same values, formatted apart")
    elif text_a is not None and text_b is not None:
        result.body_kind = "text"
        lines = list(
            difflib.unified_diff(
                text_a.splitlines(), text_b.splitlines(), f"#{a.id}", f"#{b.id}", lineterm=""
            )
        )
        result.text, result.more = lines[:MAX_CHANGES], max(0, len(lines) - MAX_CHANGES)
    else:
        result.body_kind = "binary"
    return result
