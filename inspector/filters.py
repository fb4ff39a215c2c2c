"""The filter language (`status:5xx path:/api/* dur>500ms ...`): one parser, two backends.

Sans-I/O. :func:`parse` turns a filter into a :class:`Filter`; ``Filter.sql()`` gives a WHERE
clause with parameters for the capture store (values are always parameters, never SQL text), and
``Filter.matches_record()`` tests an in-memory :class:`RequestRecord` the same way, so the
dashboard, the CLI and the store agree on what a filter means. docs/inspector.md has the
reference.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from inspector.model import StoredExchange, headers_text, payload, search_text
from relay.events import RequestRecord

ACCEPTED = (
    "status:404 status:5xx status>=400, method:POST, path:/api/*, dur>500ms (us, ms, s, m), "
    'size>1mb (b, kb, mb, gb), header:name or header:name=value, body:"text", tunnel:name; '
    "-term negates; terms are AND-ed"
)
_KEYS = ("status", "method", "path", "dur", "size", "header", "body", "tunnel")
_COMPARE = (">=", "<=", ">", "<")
_DURATION_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_SIZE_BYTES = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)([a-z]*)")
_KEY = re.compile(r"[a-z]+")
_SQL_OPS = {">=": ">=", "<=": "<=", ">": ">", "<": "<", ":": "=", "=": "="}
_PY_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ":": lambda a, b: a == b,
    "=": lambda a, b: a == b,
}


class FilterError(ValueError):
    """A filter that does not parse: says where, what was wrong, and what is accepted."""

    def __init__(self, message: str, position: int, term: str) -> None:
        self.message = message
        self.position = position  # 0-based index of the bad term in the filter text
        self.term = term
        super().__init__(
            f"bad filter at column {position + 1} ({term!r}): {message}. Accepted: {ACCEPTED}"
        )


@dataclass(frozen=True, slots=True)
class BodyIndex:
    """A store's FTS5 body tables (names the store made, never user text) and how far they go."""

    tables: Sequence[str]
    indexed_upto: int  # every exchange with a higher id is not indexed yet


@dataclass(frozen=True, slots=True)
class Subject:
    """The facts a filter looks at, taken from a stored exchange or an in-memory record."""

    tunnel: str
    method: str
    status: int
    target: str
    duration_ms: float
    size: int
    headers: str  # headers_text(): "\nname: value\n" lines
    bodies: tuple[str, str]  # search_text() of the request and the response bodies


def _glob(value: str) -> str:
    """``*`` stays a wildcard; all else is literal, in SQLite GLOB and fnmatch alike."""
    return "".join({"[": "[[]", "?": "[?]"}.get(ch, ch) for ch in value)


@dataclass(frozen=True, slots=True)
class Term:
    """One parsed term: ``key op value``, maybe negated, and where it was."""

    key: str
    op: str
    value: str
    negated: bool
    position: int
    text: str

    def sql(self, fts: BodyIndex | None) -> tuple[str, list[object]]:
        clause, params = self._sql(fts)
        return (f"NOT ({clause})" if self.negated else f"({clause})"), params

    def _sql(self, fts: BodyIndex | None) -> tuple[str, list[object]]:
        key, op, value = self.key, self.op, self.value
        if key == "status":
            if value.lower().endswith("xx"):
                low = int(value[0]) * 100
                return "status BETWEEN ? AND ?", [low, low + 99]
            return f"status {_SQL_OPS[op]} ?", [int(value)]
        if key == "method":
            return "method = ?", [value.upper()]
        if key == "path":
            column = "path" if "?" in value else "route"
            return f"{column} GLOB ?", [_glob(value)]
        if key == "dur":
            return f"duration_ms {_SQL_OPS[op]} ?", [_number(self)]
        if key == "size":
            return f"(bytes_in + bytes_out) {_SQL_OPS[op]} ?", [_number(self)]
        if key == "header":
            # GLOB narrows it down fast; header_matches keeps a `*` from spanning two lines.
            name, wanted = self._header_parts()
            return (
                "(headers GLOB ? AND header_matches(headers, ?, ?))",
                [self._header_glob(), name, wanted],
            )
        if key == "tunnel":
            return "tunnel GLOB ?", [_glob(value)]
        # body: the store keeps search_text() of each body, in FTS5 tables or in plain columns
        needle = value.lower()
        # The index keeps no text: what it cannot answer is made again from the bodies.
        scan = "(instr(search_text(req_body), ?) OR instr(search_text(resp_body), ?))"
        if fts is not None and len(needle) >= 3:  # the trigram index needs three characters
            phrase = '"' + needle.replace('"', '""') + '"'
            tables = fts.tables
            union = " UNION ALL ".join(f"SELECT rowid FROM {t} WHERE {t} MATCH ?" for t in tables)
            indexed = f"id IN ({union})" if tables else "0"
            # Rows the indexer has not reached yet are scanned.
            return (
                f"({indexed} OR (id > ? AND {scan}))",
                [*[phrase] * len(tables), fts.indexed_upto, needle, needle],
            )
        if fts is not None:
            return scan, [needle, needle]
        return "(instr(req_search, ?) OR instr(resp_search, ?))", [needle, needle]

    def _header_parts(self) -> tuple[str, str | None]:
        name, sep, wanted = self.value.partition("=")
        return _glob(name.strip().lower()), (_glob(wanted) if sep else None)

    def _header_glob(self) -> str:
        name, wanted = self._header_parts()
        return f"*\n{name}: {wanted}\n*" if wanted is not None else f"*\n{name}: *"

    def matches(self, s: Subject) -> bool:
        return self._matches(s) != self.negated

    def _matches(self, s: Subject) -> bool:
        key, op, value = self.key, self.op, self.value
        if key == "status":
            if value.lower().endswith("xx"):
                low = int(value[0]) * 100
                return low <= s.status <= low + 99
            return _PY_OPS[op](s.status, int(value))
        if key == "method":
            return s.method == value.upper()
        if key == "path":
            target = s.target if "?" in value else s.target.partition("?")[0]
            return fnmatchcase(target, _glob(value))
        if key == "dur":
            return _PY_OPS[op](s.duration_ms, _number(self))
        if key == "size":
            return _PY_OPS[op](s.size, _number(self))
        if key == "header":
            return header_matches(s.headers, *self._header_parts())
        if key == "tunnel":
            return fnmatchcase(s.tunnel, _glob(value))
        needle = value.lower()
        return needle in s.bodies[0] or needle in s.bodies[1]


def header_matches(headers: str, name_glob: str, value_glob: str | None) -> bool:
    """Whether one line of headers_text() has a name (and value) matching the globs."""
    for line in headers.split("\n"):
        name, sep, value = line.partition(": ")
        if (
            sep
            and fnmatchcase(name, name_glob)
            and (value_glob is None or fnmatchcase(value, value_glob))
        ):
            return True
    return False


def _number(term: Term) -> float:
    match = _NUMBER.fullmatch(term.value.lower())
    units = _DURATION_MS if term.key == "dur" else _SIZE_BYTES
    if match is None or match.group(2) not in ("", *units):
        raise FilterError(
            f"{term.key} takes a number with an optional unit ({', '.join(units)})",
            term.position,
            term.text,
        )
    return float(match.group(1)) * units.get(match.group(2), 1)


@dataclass(frozen=True, slots=True)
class Filter:
    """Parsed terms, all of which must hold."""

    terms: tuple[Term, ...]
    text: str = ""

    def sql(self, fts: BodyIndex | None = None) -> tuple[str, list[object]]:
        """A WHERE clause over the store's ``exchanges`` table, and its parameters.

        ``fts``: the store's FTS5 body index, or None when it searches plain columns.
        """
        if not self.terms:
            return "1", []
        clauses, params = [], []
        for term in self.terms:
            clause, more = term.sql(fts)
            clauses.append(clause)
            params.extend(more)
        return " AND ".join(clauses), params

    def matches(self, subject: Subject) -> bool:
        return all(term.matches(subject) for term in self.terms)

    def matches_record(self, tunnel: str, record: RequestRecord) -> bool:
        """Whether an in-memory record (the dashboard's) passes, as the store would decide."""
        return self.matches(subject_of_record(tunnel, record)) if self.terms else True

    def matches_exchange(self, exchange: StoredExchange) -> bool:
        return self.matches(subject_of_exchange(exchange)) if self.terms else True


def subject_of_record(tunnel: str, record: RequestRecord) -> Subject:
    c = record.capture
    heads = (c.request_head, c.response_head) if c else (b"", b"")
    return Subject(
        tunnel=tunnel,
        method=record.method,
        status=record.status,
        target=record.path,
        duration_ms=record.duration_ms,
        size=record.bytes_in + record.bytes_out,
        headers=headers_text(*heads),
        bodies=(
            search_text(payload(c.request_head, c.request_body)),
            search_text(payload(c.response_head, c.response_body)),
        )
        if c
        else ("", ""),
    )


def subject_of_exchange(e: StoredExchange) -> Subject:
    return Subject(
        tunnel=e.tunnel,
        method=e.method,
        status=e.status,
        target=e.path,
        duration_ms=e.duration_ms,
        size=e.bytes_in + e.bytes_out,
        headers=headers_text(e.request_head, e.response_head),
        bodies=(search_text(e.request_body.data), search_text(e.response_body.data)),
    )


def parse(text: str) -> Filter:
    """Parse a filter; raise :class:`FilterError` pointing at the first bad term."""
    terms = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        i, term = _term(text, i)
        _check(term)
        terms.append(term)
        assert i > start
    return Filter(tuple(terms), text)


def _term(text: str, start: int) -> tuple[int, Term]:
    i, n = start, len(text)
    negated = text[i] == "-"
    if negated:
        i += 1
    key_match = _KEY.match(text, i)
    key = key_match.group(0) if key_match else ""
    i += len(key)
    op = next((o for o in (*_COMPARE, ":", "=") if text.startswith(o, i)), "")
    i += len(op)
    value: list[str] = []
    while i < n and not text[i].isspace():
        if text[i] == '"':
            quote_at = i
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(text[i])
                i += 1
            if i >= n:
                raise FilterError("unterminated quote", quote_at, text[start:])
            i += 1
        else:
            value.append(text[i])
            i += 1
    raw = text[start:i]
    if not key or not op:
        raise FilterError("expected key:value (or key>value)", start, raw)
    return i, Term(key, op, "".join(value), negated, start, raw)


def _check(term: Term) -> None:
    key, op, value = term.key, term.op, term.value

    def bad(message: str) -> FilterError:
        return FilterError(message, term.position, term.text)

    if key not in _KEYS:
        raise bad(f"unknown key {key!r}")
    if not value:
        raise bad(f"{key} needs a value")
    if key in ("dur", "size"):
        if op not in _COMPARE:
            raise bad(f"{key} needs a comparison (>, <, >=, <=), e.g. {key}>10")
        _number(term)
    elif key == "status":
        if re.fullmatch(r"[1-5]xx", value.lower()):
            if op not in (":", "="):
                raise bad("a status class (5xx) takes status:5xx")
        elif not re.fullmatch(r"\d{1,3}", value):
            raise bad("status takes a code (404), a class (5xx) or a comparison (status>=400)")
    elif op not in (":", "="):
        raise bad(f"{key} takes {key}:value")
    if key == "method" and not re.fullmatch(r"[A-Za-z-]{1,32}", value):
        raise bad("method takes a method name, e.g. method:POST")
    if key == "header" and not value.partition("=")[0].strip():
        raise bad("header takes header:name or header:name=value")
