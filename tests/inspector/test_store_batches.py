"""Batches inserted with one executemany: the ids handed back are the rows', across slices too."""

from __future__ import annotations

import sqlite3

from inspector import CaptureStore
from inspector.model import headers_text, prepare
from inspector.redact import Redactor
from inspector.store import SLICES
from relay.events import parse_header_lines
from tests.inspector.records import exchange

_REDACTOR = Redactor(("authorization",), ("password",))


def _stored(n: int, body: bytes = b"x" * 2000, prefix: str = "/item") -> list:
    return [
        prepare("t", exchange("POST", f"{prefix}/{i}", 201, req_body=body), _REDACTOR, 65536)
        for i in range(n)
    ]


def _paths(store: CaptureStore, ids: list[int]) -> list[str]:
    found = [store.get(i) for i in ids]
    return [e.path if e is not None else "<missing>" for e in found]


def test_a_batch_spanning_several_slices_gets_the_ids_of_its_rows(tmp_path):
    # A slice holds max_bytes / SLICES: about five of these rows, so 40 rows cross several.
    max_bytes = SLICES * 12_000
    with CaptureStore(tmp_path / "c.sqlite3", max_bytes=max_bytes * 100) as store:
        store.max_bytes = max_bytes  # small slices, and no eviction while we look
        store._unchecked = -(10**9)
        ids = store.add(_stored(40))
        assert ids == list(range(ids[0], ids[0] + 40))
        assert _paths(store, ids) == [f"/item/{i}" for i in range(40)]
        slices = store.db.execute("SELECT n, first_id, bytes FROM slices ORDER BY n").fetchall()
        assert len(slices) >= 4
        # Each slice starts at one of the batch's rows and counts exactly its rows' bytes.
        bounds = [first for _, first, _ in slices] + [ids[-1] + 1]
        for (n, first, counted), end in zip(slices, bounds[1:], strict=True):
            (size,) = store.db.execute(
                "SELECT coalesce(sum(stored_bytes), 0) FROM exchanges WHERE id >= ? AND id < ?",
                (first, end),
            ).fetchone()
            assert counted == size, f"slice {n}"


def test_ids_stay_right_after_rows_were_deleted_and_never_reuse_old_ones(tmp_path):
    with CaptureStore(tmp_path / "c.sqlite3") as store:
        first = store.add(_stored(5, prefix="/a"))
        store.clear()
        again = store.add(_stored(7, prefix="/b"))
        assert again[0] > first[-1]  # AUTOINCREMENT: a deleted id is never handed out again
        assert _paths(store, again) == [f"/b/{i}" for i in range(7)]
        assert store.add([]) == []


def test_ids_are_right_with_a_reader_in_another_connection(tmp_path):
    path = tmp_path / "c.sqlite3"
    with CaptureStore(path) as store:
        store.add(_stored(3))
        reader = sqlite3.connect(path)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM exchanges").fetchone()  # holds a snapshot
            ids = store.add(_stored(4, prefix="/late"))
            reader.execute("COMMIT")
            rows = reader.execute("SELECT id, path FROM exchanges ORDER BY id").fetchall()
        finally:
            reader.close()
    assert [r for r in rows if r[0] in ids] == [(i, f"/late/{k}") for k, i in enumerate(ids)]


def _headers_text_by_parsing(request_head: bytes, response_head: bytes) -> str:
    lines = [""]
    for head in (request_head, response_head):
        if head:
            lines.extend(f"{name.lower()}: {value}" for name, value in parse_header_lines(head))
    lines.append("")
    return "\n".join(lines)


def test_headers_text_says_what_parsing_every_header_says_on_odd_heads():
    heads = [
        (b"", b""),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        (b"GET / HTTP/1.1\r\nA:  b \t\r\nno colon here\r\nX-Y: z:w\r\n:empty\r\n", b""),
        (
            b"GET / HTTP/1.1\r\nK: \xff\xfe\x00\r\nK: again\r\n",
            b"HTTP/1.1 204\r\nSet-Cookie: a\r\n",
        ),
        (b"\r\n\r\n\r\n", b"HTTP/1.1 200 OK"),
        (b"GET / HTTP/1.1\nBare: lf\n", b"HTTP/1.1 200 OK\r\nFOLDED: a\r\n  b\r\n"),
    ]
    for request_head, response_head in heads:
        expected = _headers_text_by_parsing(request_head, response_head)
        assert headers_text(request_head, response_head) == expected
