"""The capture store: exchanges in one SQLite file (WAL), bounded by size, readable by any process.

One process writes (the :class:`inspector.writer.CaptureWriter`'s thread); any number of others
read at the same time (`molehill requests`). The file is bounded: after each batch, while the
pages in use pass ``max_bytes``, the oldest slice of exchanges is dropped (see inspector.schema);
its pages are reused, so the file stops growing. Every SQLite failure comes out as a
:class:`StoreError` naming the file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from inspector.errors import StoreError, StoreMissing
from inspector.filters import BodyIndex, Filter, header_matches
from inspector.message_rows import MessageUpdate, load_messages, store_messages
from inspector.model import StoredBody, StoredExchange, headers_text, search_text
from inspector.schema import (
    body_table,
    create_body_table,
    fts5_trigram_available,
    prepare,
    reported,
)

SLICES = 16  # the store is evicted a slice at a time: about 1/16 of max_bytes
_ROW_OVERHEAD = 256  # bytes per exchange besides its heads and bodies, for the slice estimates
_SUMMARY = (
    "id, tunnel, time, method, path, status, duration_ms, ttfb_ms, bytes_in, bytes_out, client, "
    "http_version, replay_of, target"
)
_FULL = (
    _SUMMARY + ", req_head, resp_head, req_body, resp_body, req_truncated, resp_truncated, "
    "req_size, resp_size, req_sha256, resp_sha256, messages_protocol, messages_dropped, "
    "messages_note, messages_closed"
)
_INSERT = (
    "INSERT INTO exchanges (tunnel, time, method, path, route, status, duration_ms, ttfb_ms, "
    "bytes_in, bytes_out, client, http_version, headers, req_head, resp_head, req_body, resp_body, "
    "req_truncated, resp_truncated, req_size, resp_size, req_sha256, resp_sha256, req_search, "
    "resp_search, stored_bytes, replay_of, target) VALUES (" + ", ".join("?" * 28) + ")"
)
_STORED_AT = 25  # stored_bytes in an _INSERT row


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
        self._unchecked = 0  # bytes added since the file's size was last measured
        if not create and not self.path.exists():
            raise StoreMissing(self.path, "no captures yet (the file does not exist)")
        if create:
            try:
                # Visitors' requests, your app's answers: yours alone to read (SQLite gives the
                # -wal and -shm files the mode of the file).
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            except OSError as exc:
                raise StoreError(self.path, f"cannot make it or its directory: {exc}") from exc
        with reported(self.path):
            self.db = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            # What body: searches for needles too short for the trigram index.
            self.db.create_function("search_text", 1, _search_text, deterministic=True)
            self.db.create_function("header_matches", 3, header_matches, deterministic=True)
            try:
                self.body_search = prepare(self.db, self.path, create)
            except BaseException:
                self.db.close()
                raise
        # A store made with FTS5, opened by a Python without it, answers body searches by
        # scanning every body (the index is not used, and not fed until FTS5 is back).
        self.fts = self.body_search == "fts5" and fts5_trigram_available()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> CaptureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self, kind: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        db = self.db
        with reported(self.path):
            db.execute(f"BEGIN {kind}")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    # Writing

    def add(self, exchanges: list[StoredExchange]) -> list[int]:
        """Store exchanges in one transaction, then evict the oldest if over size; their ids."""
        with self._transaction() as db:
            ids = self._insert_all(db, exchanges)
        # Measuring the file costs three PRAGMAs: do it once per 1/64 of the bound written.
        if self._unchecked >= self.max_bytes // 64:
            self._unchecked = 0
            self._evict()
        return ids

    def _current_slice(self, db: sqlite3.Connection) -> int:
        row = db.execute("SELECT n, bytes FROM slices ORDER BY n DESC LIMIT 1").fetchone()
        if row is not None and row[1] < self.max_bytes // SLICES:
            return int(row[0])
        return self._new_slice(db, 1 if row is None else row[0] + 1)

    def _new_slice(self, db: sqlite3.Connection, n: int) -> int:
        seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name='exchanges'").fetchone()
        db.execute("INSERT INTO slices VALUES (?, ?, 0)", (n, (seq[0] if seq else 0) + 1))
        if self.fts:
            create_body_table(db, n)
        return n

    def _insert_all(self, db: sqlite3.Connection, exchanges: list[StoredExchange]) -> list[int]:
        # Rows are made first, then go in with one executemany per slice (one call into SQLite
        # instead of one per row: about 5 µs less per exchange). The current slice is looked up
        # and its size updated once per slice, not per row.
        rows = [self._row(e) for e in exchanges]
        ids: list[int] = []
        n = self._current_slice(db)
        start = 0
        while start < len(rows):
            room = self.max_bytes // SLICES
            end, added = start, 0
            while end < len(rows) and (end == start or added < room):
                added += rows[end][_STORED_AT]
                end += 1
            ids.extend(_insert_rows(db, rows[start:end]))
            db.execute("UPDATE slices SET bytes = bytes + ? WHERE n = ?", (added, n))
            self._unchecked += added
            start = end
            if start < len(rows):
                n = self._current_slice(db)
        return ids

    def _row(self, e: StoredExchange) -> tuple[Any, ...]:
        req, resp = e.request_body, e.response_body
        headers = headers_text(e.request_head, e.response_head)
        stored = len(e.request_head) + len(e.response_head) + len(req.data) + len(resp.data)
        stored += len(headers) + _ROW_OVERHEAD
        if self.body_search == "fts5":
            # The trigram index takes about 3x the text; counted from the bytes (decoding
            # and lowering each body here only to measure it cost more than the insert's
            # share; the writer indexes the text later, when idle).
            search = ("", "")
            stored += 3 * (_text_size(req.data) + _text_size(resp.data))
        else:
            search = (search_text(req.data), search_text(resp.data))
            stored += len(search[0]) + len(search[1])
        return (
            e.tunnel, e.time, e.method, e.path, e.path.partition("?")[0], e.status,
            e.duration_ms, e.ttfb_ms, e.bytes_in, e.bytes_out, e.client, e.http_version,
            headers, e.request_head, e.response_head, req.data, resp.data,
            int(req.truncated), int(resp.truncated), req.size, resp.size,
            req.sha256, resp.sha256, search[0], search[1], stored, e.replay_of, e.target,
        )  # fmt: skip

    def add_messages(self, updates: list[MessageUpdate]) -> None:
        """Append WebSocket messages / SSE events to stored exchanges, in one transaction."""
        with self._transaction() as db:
            added = store_messages(db, updates)
            if added:
                n = self._current_slice(db)
                db.execute("UPDATE slices SET bytes = bytes + ? WHERE n = ?", (added, n))
        self._unchecked += added

    def index_some(self, rows: int = 200) -> int:
        """Add up to ``rows`` stored exchanges to the body index; how many were looked at.

        Indexing costs more than storing (the trigram index is about 3x the text), so the writer
        does it when it has nothing else to do; searches scan what is not indexed yet.
        """
        if not self.fts:
            return 0
        with self._transaction() as db:
            upto = _indexed_upto(db)
            found = db.execute(
                "SELECT id, req_body, resp_body FROM exchanges WHERE id > ? ORDER BY id LIMIT ?",
                (upto, rows),
            ).fetchall()
            if not found:
                return 0
            slices = db.execute("SELECT n, first_id FROM slices ORDER BY n DESC").fetchall()
            for row_id, req, resp in found:
                req_text, resp_text = search_text(req), search_text(resp)
                if req_text or resp_text:
                    n = next(n for n, first in slices if first <= row_id)
                    create_body_table(db, n)  # made by a writer without FTS5, maybe
                    db.execute(
                        f"INSERT INTO {body_table(n)} (rowid, req, resp) VALUES (?, ?, ?)",
                        (row_id, req_text, resp_text),
                    )
            db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('indexed_upto', ?)", (str(found[-1][0]),)
            )
        return len(found)

    def used_bytes(self) -> int:
        """Bytes of the file's pages in use (free pages excluded: SQLite reuses them)."""
        with reported(self.path):
            db = self.db
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            free = db.execute("PRAGMA freelist_count").fetchone()[0]
            size = db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def _evict(self) -> None:
        while self.used_bytes() > self.max_bytes:
            with self._transaction() as db:
                rows = db.execute("SELECT n, first_id FROM slices ORDER BY n LIMIT 2").fetchall()
                if not rows:
                    return
                if len(rows) == 1:  # the only slice is too big: start the next one, drop this
                    nxt = self._new_slice(db, rows[0][0] + 1)
                    rows.append(
                        db.execute("SELECT n, first_id FROM slices WHERE n=?", (nxt,)).fetchone()
                    )
                (oldest, _), (_, next_first) = rows
                db.execute("DELETE FROM exchanges WHERE id < ?", (next_first,))
                db.execute("DELETE FROM messages WHERE exchange_id < ?", (next_first,))
                self._drop_slice(db, oldest)

    def _drop_slice(self, db: sqlite3.Connection, n: int) -> None:
        db.execute("DELETE FROM slices WHERE n = ?", (n,))
        try:
            db.execute(f"DROP TABLE IF EXISTS {body_table(n)}")
        except sqlite3.OperationalError:
            if self.fts:
                raise
            # No FTS5 here to drop its table: it stays (unused) until a process with FTS5 runs.

    def clear(self, tunnel: str | None = None) -> int:
        """Delete every exchange (or one tunnel's); how many went.

        One tunnel's rows leave its slices' indexes as they are (searches only return rows that
        exist); that space comes back when their slice is evicted.
        """
        with self._transaction() as db:
            if tunnel is not None:
                db.execute(
                    "DELETE FROM messages WHERE exchange_id IN "
                    "(SELECT id FROM exchanges WHERE tunnel = ?)",
                    (tunnel,),
                )
                return int(db.execute("DELETE FROM exchanges WHERE tunnel = ?", (tunnel,)).rowcount)
            db.execute("DELETE FROM messages")
            gone = int(db.execute("DELETE FROM exchanges").rowcount)
            for (n,) in db.execute("SELECT n FROM slices").fetchall():
                self._drop_slice(db, n)
            return gone

    # Reading: each in one read transaction, so the slices listed are the slices queried.

    def _where(
        self, db: sqlite3.Connection, flt: Filter | None, tunnel: str | None
    ) -> tuple[str, list[object]]:
        index = None
        if self.fts:
            tables = [body_table(n) for (n,) in db.execute("SELECT n FROM slices ORDER BY n")]
            index = BodyIndex(tables, _indexed_upto(db))
        elif self.body_search == "fts5":  # no FTS5 here: scan every body
            index = BodyIndex([], 0)
        where, params = flt.sql(index) if flt is not None else ("1", [])
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
        between: tuple[int, int] | None = None,
        max_bytes: int | None = None,
    ) -> list[StoredExchange]:
        """Exchanges that pass the filter. Without ``full``, heads and bodies are left empty.
        Pages: ``between`` keeps ids strictly between its two; ``max_bytes`` stops once the rows
        read hold that many bytes (``StoredExchange.held_bytes``; one row at least)."""
        with self._transaction("DEFERRED") as db:
            where, params = self._where(db, flt, tunnel)
            if between is not None:
                where, params = f"({where}) AND id > ? AND id < ?", [*params, *between]
            order = "DESC" if newest_first else "ASC"
            columns = _FULL if full else _SUMMARY
            sql = f"SELECT {columns} FROM exchanges WHERE {where} ORDER BY id {order}"
            if limit is not None:
                sql += " LIMIT ?"
                params = [*params, max(0, limit)]
            found, held = [], 0
            rows = db.execute(sql, params)
            for row in rows:  # SQLite hands rows over one at a time: the ones not read cost nothing
                e = _exchange(row, full)
                if e.messages_protocol:  # only full rows know: exports, the API
                    e.messages = load_messages(db, e.id)
                found.append(e)
                if max_bytes is not None:
                    held += e.held_bytes()
                    if held >= max_bytes:
                        break
            rows.close()
            return found

    def get(self, exchange_id: int) -> StoredExchange | None:
        """One exchange, whole: heads, bodies, and its messages if it has any."""
        with self._transaction("DEFERRED") as db:
            row = db.execute(
                f"SELECT {_FULL} FROM exchanges WHERE id = ?", (exchange_id,)
            ).fetchone()
            if row is None:
                return None
            exchange = _exchange(row, True)
            if exchange.messages_protocol:
                exchange.messages = load_messages(db, exchange_id)
        return exchange

    def count(self, flt: Filter | None = None, *, tunnel: str | None = None) -> int:
        with self._transaction("DEFERRED") as db:
            where, params = self._where(db, flt, tunnel)
            return int(
                db.execute(f"SELECT count(*) FROM exchanges WHERE {where}", params).fetchone()[0]
            )


def _indexed_upto(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM meta WHERE key='indexed_upto'").fetchone()
    return int(row[0]) if row else 0


def _insert_rows(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> range:
    """Insert rows with one executemany; their ids. The store's one writer inserts them in one
    transaction into an AUTOINCREMENT table, so they get consecutive ids ending at the last."""
    db.executemany(_INSERT, rows)
    last = int(db.execute("SELECT last_insert_rowid()").fetchone()[0])
    return range(last - len(rows) + 1, last + 1)


def _text_size(data: bytes) -> int:
    """About the size of search_text(data): the bytes of a text body, 0 for a binary one."""
    return 0 if b"\x00" in data else len(data)


def _search_text(data: object) -> str:
    return search_text(data) if isinstance(data, bytes) else ""


def _exchange(row: Any, full: bool) -> StoredExchange:
    """A row of _SUMMARY (or _FULL) columns as a StoredExchange."""
    if full:
        req = StoredBody(row[16], bool(row[18]), row[20], row[22])
        resp = StoredBody(row[17], bool(row[19]), row[21], row[23])
        heads = (row[14], row[15])
        messages = (row[24], row[25], row[26], bool(row[27]))
    else:
        req, resp, heads = StoredBody(), StoredBody(), (b"", b"")
        messages = ("", 0, "", True)
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
        replay_of=row[12],
        target=row[13],
        messages_protocol=messages[0],
        messages_dropped=messages[1],
        messages_note=messages[2],
        messages_closed=messages[3],
    )
