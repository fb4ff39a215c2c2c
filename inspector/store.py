"""The capture store: exchanges in one SQLite file (WAL), bounded by size, readable by any process.

One process writes (the :class:`inspector.writer.CaptureWriter`'s thread); any number of others
read at the same time (`molehill requests`). The file is bounded: after each batch, if the pages
in use pass ``max_bytes``, the oldest exchanges are deleted (their pages are reused, so the file
stops growing). Every SQLite failure comes out as a :class:`StoreError` naming the file.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from inspector.errors import StoreCorrupt, StoreError, StoreLocked, StoreMissing, StoreTooNew
from inspector.filters import Filter
from inspector.model import StoredBody, StoredExchange, headers_text, search_text

SCHEMA_VERSION = 1
_ROW_OVERHEAD = 256  # bytes per exchange besides its heads and bodies, for eviction estimates

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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
    stored_bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS exchanges_by_tunnel ON exchanges (tunnel, id);
"""
_FTS_SCHEMA = "CREATE VIRTUAL TABLE IF NOT EXISTS bodies USING fts5(req, resp, tokenize='trigram')"
_SUMMARY = (
    "id, tunnel, time, method, path, status, duration_ms, ttfb_ms, bytes_in, bytes_out, client, "
    "http_version"
)
_FULL = (
    _SUMMARY + ", req_head, resp_head, req_body, resp_body, req_truncated, resp_truncated, "
    "req_size, resp_size, req_sha256, resp_sha256"
)
_INSERT = (
    "INSERT INTO exchanges (tunnel, time, method, path, route, status, duration_ms, ttfb_ms, "
    "bytes_in, bytes_out, client, http_version, headers, req_head, resp_head, req_body, resp_body, "
    "req_truncated, resp_truncated, req_size, resp_size, req_sha256, resp_sha256, req_search, "
    "resp_search, stored_bytes) VALUES (" + ", ".join("?" * 26) + ")"
)


@cache
def fts5_trigram_available() -> bool:
    """Whether this Python's SQLite has FTS5 with the trigram tokenizer (SQLite 3.34+)."""
    try:
        with contextlib.closing(sqlite3.connect(":memory:")) as db:
            db.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='trigram')")
        return True
    except sqlite3.Error:
        return False


@contextlib.contextmanager
def _reported(path: Path) -> Iterator[None]:
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


class CaptureStore:
    """An open capture store. Not thread-safe: one thread uses one instance."""

    def __init__(
        self,
        path: Path,
        *,
        create: bool = True,
        max_bytes: int = 256 * 1024 * 1024,
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        if not create and not self.path.exists():
            raise StoreMissing(self.path, "no captures yet (the file does not exist)")
        if create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(self.path, f"cannot make its directory: {exc}") from exc
        with _reported(self.path):
            self.db = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            try:
                self.fts = self._prepare(create)
            except BaseException:
                self.db.close()
                raise

    def _prepare(self, create: bool) -> bool:
        db = self.db
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
                    self.path,
                    f"written by a newer molehill (store version {version}, this molehill reads "
                    f"up to {SCHEMA_VERSION}); upgrade molehill or point MOLEHILL_CAPTURE_FILE "
                    "at another file",
                )
            if version is None and tables - {"sqlite_sequence"}:
                raise StoreCorrupt(self.path, "not a molehill capture store; move it aside")
            if version is None and create:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                search = "fts5" if fts5_trigram_available() else "like"
                if search == "fts5":
                    db.execute(_FTS_SCHEMA)
                db.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [("schema_version", str(SCHEMA_VERSION)), ("body_search", search)],
                )
            elif version is None:
                raise StoreMissing(self.path, "no captures yet (the store is empty)")
            row = db.execute("SELECT value FROM meta WHERE key='body_search'").fetchone()
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return row is not None and row[0] == "fts5" and fts5_trigram_available()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> CaptureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Writing

    def add(self, exchanges: list[StoredExchange]) -> list[int]:
        """Store exchanges in one transaction, then evict the oldest if over size; their ids."""
        ids = []
        with _reported(self.path):
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                for e in exchanges:
                    ids.append(self._insert(e))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._evict()
        return ids

    def _insert(self, e: StoredExchange) -> int:
        req, resp = e.request_body, e.response_body
        req_text, resp_text = search_text(req.data), search_text(resp.data)
        headers = headers_text(e.request_head, e.response_head)
        stored = len(e.request_head) + len(e.response_head) + len(req.data) + len(resp.data)
        stored += len(headers) + _ROW_OVERHEAD
        # The search text: in the trigram index (about 3x its size) or in two columns.
        stored += (3 if self.fts else 1) * (len(req_text) + len(resp_text))
        search = ("", "") if self.fts else (req_text, resp_text)
        cursor = self.db.execute(
            _INSERT,
            (
                e.tunnel, e.time, e.method, e.path, e.path.partition("?")[0], e.status,
                e.duration_ms, e.ttfb_ms, e.bytes_in, e.bytes_out, e.client, e.http_version,
                headers, e.request_head, e.response_head, req.data, resp.data,
                int(req.truncated), int(resp.truncated), req.size, resp.size,
                req.sha256, resp.sha256, search[0], search[1], stored,
            ),
        )  # fmt: skip
        row_id = int(cursor.lastrowid or 0)
        if self.fts:
            self.db.execute(
                "INSERT INTO bodies (rowid, req, resp) VALUES (?, ?, ?)",
                (row_id, req_text, resp_text),
            )
        return row_id

    def used_bytes(self) -> int:
        """Bytes of the file's pages in use (free pages excluded: SQLite reuses them)."""
        with _reported(self.path):
            db = self.db
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            free = db.execute("PRAGMA freelist_count").fetchone()[0]
            size = db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def _evict(self) -> None:
        for _ in range(8):  # each round deletes at least the estimated excess
            excess = self.used_bytes() - self.max_bytes
            if excess <= 0:
                return
            target = excess + self.max_bytes // 10  # room for the next batches
            db = self.db
            cutoff = None
            total = 0
            for row_id, size in db.execute("SELECT id, stored_bytes FROM exchanges ORDER BY id"):
                cutoff, total = row_id, total + size
                if total >= target:
                    break
            if cutoff is None:
                return
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM exchanges WHERE id <= ?", (cutoff,))
            if self.fts:
                db.execute("DELETE FROM bodies WHERE rowid <= ?", (cutoff,))
                db.execute("INSERT INTO bodies (bodies, rank) VALUES ('merge', 64)")
            db.execute("COMMIT")

    def clear(self, tunnel: str | None = None) -> int:
        """Delete every exchange (or one tunnel's); how many went."""
        with _reported(self.path):
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            where, params = ("tunnel = ?", [tunnel]) if tunnel is not None else ("1", [])
            if self.fts:
                db.execute(
                    f"DELETE FROM bodies WHERE rowid IN (SELECT id FROM exchanges WHERE {where})",
                    params,
                )
            gone = db.execute(f"DELETE FROM exchanges WHERE {where}", params).rowcount
            db.execute("COMMIT")
        return int(gone)

    # Reading

    def _where(self, flt: Filter | None, tunnel: str | None) -> tuple[str, list[object]]:
        where, params = flt.sql(self.fts) if flt is not None else ("1", [])
        if tunnel is not None:
            where, params = f"({where}) AND tunnel = ?", [*params, tunnel]
        return where, params

    def select(
        self,
        flt: Filter | None = None,
        *,
        tunnel: str | None = None,
        limit: int | None = None,
        newest_first: bool = True,
        full: bool = False,
    ) -> list[StoredExchange]:
        """Exchanges that pass the filter. Without ``full``, heads and bodies are left empty."""
        where, params = self._where(flt, tunnel)
        order = "DESC" if newest_first else "ASC"
        sql = (
            f"SELECT {_FULL if full else _SUMMARY} FROM exchanges WHERE {where} ORDER BY id {order}"
        )
        if limit is not None:
            sql += " LIMIT ?"
            params = [*params, max(0, limit)]
        with _reported(self.path):
            return [_exchange(row, full) for row in self.db.execute(sql, params)]

    def get(self, exchange_id: int) -> StoredExchange | None:
        with _reported(self.path):
            row = self.db.execute(
                f"SELECT {_FULL} FROM exchanges WHERE id = ?", (exchange_id,)
            ).fetchone()
        return None if row is None else _exchange(row, True)

    def count(self, flt: Filter | None = None, *, tunnel: str | None = None) -> int:
        where, params = self._where(flt, tunnel)
        with _reported(self.path):
            return int(
                self.db.execute(f"SELECT count(*) FROM exchanges WHERE {where}", params).fetchone()[
                    0
                ]
            )


def _exchange(row: Any, full: bool) -> StoredExchange:
    """A row of _SUMMARY (or _FULL) columns as a StoredExchange."""
    if full:
        req = StoredBody(row[14], bool(row[16]), row[18], row[20])
        resp = StoredBody(row[15], bool(row[17]), row[19], row[21])
        heads = (row[12], row[13])
    else:
        req, resp, heads = StoredBody(), StoredBody(), (b"", b"")
    return StoredExchange(
        id=row[0],
        tunnel=row[1],
        time=row[2],
        method=row[3],
        path=row[4],
        status=row[5],
        duration_ms=row[6],
        ttfb_ms=row[7],
        bytes_in=row[8],
        bytes_out=row[9],
        client=row[10],
        http_version=row[11],
        request_head=heads[0],
        response_head=heads[1],
        request_body=req,
        response_body=resp,
    )
