"""The capture store's file: its tables, opening and checking it, and SQLite errors as StoreErrors.

Exchanges are kept in slices of about 1/16 of the store's size: eviction drops the oldest slice
whole, its rows and its own FTS5 table (``bodies_<n>``), so space comes back at once (deleting
rows from one big FTS5 index leaves tombstones that take a full merge to reclaim).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from inspector.errors import StoreCorrupt, StoreError, StoreLocked, StoreMissing, StoreTooNew

SCHEMA_VERSION = 3
# What each version adds to the one before, applied in order when an older store is opened.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        # The exchange this one replays (None: it came through the tunnel).
        "ALTER TABLE exchanges ADD COLUMN replay_of INTEGER",
        # The local app it went to (http://127.0.0.1:3000), so a replay knows where to send it.
        "ALTER TABLE exchanges ADD COLUMN target TEXT NOT NULL DEFAULT ''",
    ),
    3: (
        # An upgraded connection's WebSocket messages, an event stream's events.
        "ALTER TABLE exchanges ADD COLUMN messages_protocol TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE exchanges ADD COLUMN messages_dropped INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE exchanges ADD COLUMN messages_note TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE exchanges ADD COLUMN messages_closed INTEGER NOT NULL DEFAULT 1",
        "CREATE TABLE IF NOT EXISTS messages (" + "{MESSAGES}" + ")",
    ),
}

# One row per WebSocket message or SSE event, in the order they passed (seq from 0).
_MESSAGES = (
    "exchange_id INTEGER NOT NULL, seq INTEGER NOT NULL, time REAL NOT NULL, "
    "direction TEXT NOT NULL, kind TEXT NOT NULL, size INTEGER NOT NULL, preview BLOB NOT NULL, "
    "compressed INTEGER NOT NULL, event TEXT NOT NULL, event_id TEXT NOT NULL, "
    "PRIMARY KEY (exchange_id, seq)"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS slices (
    n INTEGER PRIMARY KEY, first_id INTEGER NOT NULL, bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS exchanges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tunnel TEXT NOT NULL, time REAL NOT NULL, method TEXT NOT NULL,
    path TEXT NOT NULL, route TEXT NOT NULL, status INTEGER NOT NULL,
    duration_ms REAL NOT NULL, ttfb_ms REAL, bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL,
    client TEXT NOT NULL, http_version TEXT NOT NULL, headers TEXT NOT NULL,
    req_head BLOB NOT NULL, resp_head BLOB NOT NULL,
    req_body BLOB NOT NULL, resp_body BLOB NOT NULL,
    req_truncated INTEGER NOT NULL, resp_truncated INTEGER NOT NULL,
    req_size INTEGER NOT NULL, resp_size INTEGER NOT NULL, req_sha256 TEXT, resp_sha256 TEXT,
    req_search TEXT NOT NULL, resp_search TEXT NOT NULL, -- body search without FTS5 only
    stored_bytes INTEGER NOT NULL,
    replay_of INTEGER, target TEXT NOT NULL DEFAULT '',
    messages_protocol TEXT NOT NULL DEFAULT '', messages_dropped INTEGER NOT NULL DEFAULT 0,
    messages_note TEXT NOT NULL DEFAULT '', messages_closed INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS messages ({MESSAGES});
CREATE INDEX IF NOT EXISTS exchanges_by_tunnel ON exchanges (tunnel, id)
""".replace("{MESSAGES}", _MESSAGES)


def body_table(n: int) -> str:
    return f"bodies_{int(n)}"


def create_body_table(db: sqlite3.Connection, n: int) -> None:
    # Contentless: the index only; the text is search_text() of the stored bodies.
    db.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {body_table(n)} USING fts5(req, resp, content='', "
        "tokenize='trigram')"
    )


@cache
def fts5_trigram_available() -> bool:
    """Whether this Python's SQLite has FTS5 with the trigram tokenizer (SQLite 3.34+)."""
    try:
        with contextlib.closing(sqlite3.connect(":memory:")) as db:
            create_body_table(db, 0)
        return True
    except sqlite3.Error:
        return False


@contextlib.contextmanager
def reported(path: Path) -> Iterator[None]:
    """Turns SQLite's exceptions into StoreErrors that name the file and say what to do."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "locked" in text or "busy" in text:
            raise StoreLocked(path, f"{text}: another process holds it; try again") from exc
        if "disk" in text or "full" in text or "readonly" in text or "unable to open" in text:
            raise StoreError(path, f"{text}: check the disk and the file's permissions") from exc
        raise StoreCorrupt(path, f"{text}: move the file aside to start a new store") from exc
    except sqlite3.DatabaseError as exc:
        raise StoreCorrupt(
            path, f"{exc}: not a readable capture store; move it aside to start a new one"
        ) from exc


def prepare(db: sqlite3.Connection, path: Path, create: bool) -> str:
    """Check (and on first use create) the tables; how the store searches bodies: "fts5" (an
    index, built by the writer) or "like" (plain search columns, for a SQLite without FTS5)."""
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
    db.execute("PRAGMA journal_size_limit=16777216")
    db.execute("BEGIN IMMEDIATE" if create else "BEGIN")
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        version = None
        if "meta" in tables:
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else None
        if version is not None and version > SCHEMA_VERSION:
            raise StoreTooNew(
                path,
                f"written by a newer molehill (store version {version}, this molehill reads "
                f"up to {SCHEMA_VERSION}); upgrade molehill or point MOLEHILL_CAPTURE_FILE "
                "at another file",
            )
        if version is None and tables - {"sqlite_sequence"}:
            raise StoreCorrupt(path, "not a molehill capture store; move it aside")
        if version is None and not create:
            raise StoreMissing(path, "no captures yet (the store is empty)")
        if version is None:
            for statement in _SCHEMA.split(";"):
                db.execute(statement)
            search = "fts5" if fts5_trigram_available() else "like"
            db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("schema_version", str(SCHEMA_VERSION)), ("body_search", search)],
            )
        elif version < SCHEMA_VERSION:
            migrate(db, version)
        row = db.execute("SELECT value FROM meta WHERE key='body_search'").fetchone()
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return "fts5" if row is not None and row[0] == "fts5" else "like"


def migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring a store written by an older molehill up to SCHEMA_VERSION, inside the caller's
    transaction (so a failure leaves the file as it was)."""
    for step in range(version + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[step]:
            db.execute(statement.replace("{MESSAGES}", _MESSAGES))
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
