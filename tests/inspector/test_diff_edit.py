"""Response diffs (JSON by path, text unified, headers), edited messages and their line errors,
the v1 -> v2 store migration, and refusing a request whose body the store cut."""

from __future__ import annotations

import sqlite3

import pytest

from inspector.diff import diff_json, diff_responses
from inspector.message import EditError, ReplayRequest, from_text
from inspector.model import StoredBody, StoredExchange
from inspector.replay import ReplayError, from_exchange
from inspector.schema import SCHEMA_VERSION
from inspector.store import CaptureStore


def stored(i: int, status: int, head: bytes, body: bytes, req_body: bytes = b"") -> StoredExchange:
    return StoredExchange(
        i, "api", 0.0, "POST", "/x", status, 1.0, 1.0, 1, 1, "c", "1.1",
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n", head,
        StoredBody(req_body, False, len(req_body)), StoredBody(body, False, len(body)),
    )  # fmt: skip


def test_json_diff_by_path():
    a = {"items": [{"price": 10}, {"price": 5}], "gone": 1, "weird key": True}
    b = {"items": [{"price": 10}, {"price": 12}, {"price": 1}], "weird key": False, "new": None}
    lines = [c.line() for c in diff_json(a, b)]
    assert lines == [
        "~ items[1].price: 5 -> 12",
        '+ items[2]: {"price": 1}',
        "- gone: 1",
        '~ ["weird key"]: true -> false',
        "+ new: null",
    ]


def test_response_diff_status_headers_text_and_binary():
    head_a = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nX-Same: s\r\n\r\n"
    head_b = b"HTTP/1.1 500 Oops\r\nX-Same: s\r\nX-B: 2\r\n\r\n"
    d = diff_responses(stored(1, 200, head_a, b"one\ntwo\n"), stored(2, 500, head_b, b"one\n3\n"))
    assert d.status == (200, 500) and d.body_kind == "text"
    assert [c.line() for c in d.headers] == ["- X-A: '1'", "+ X-B: '2'"]
    assert "-two" in d.text and "+3" in d.text
    same = diff_responses(stored(1, 200, head_a, b"x"), stored(2, 200, head_a, b"x"))
    assert same.same and "no difference" in same.lines()[1]
    binary = diff_responses(stored(1, 200, head_a, b"\xff\x00"), stored(2, 200, head_a, b"\xfe"))
    assert binary.body_kind == "binary"


def test_edit_round_trip_and_errors_point_at_the_line():
    req = ReplayRequest.from_head(
        b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n", b"hi"
    )
    assert from_text(req.to_text() + "\n", req.body).to_bytes() == req.to_bytes()
    edited = from_text("PUT /b HTTP/1.1\nHost: h\nContent-Length: 2\n\nlonger body", b"hi")
    assert edited.to_bytes().endswith(b"Content-Length: 11\r\n\r\nlonger body")
    cases = {
        "": (1, "empty request line"),
        "POST\n\n": (1, "not a request line"),
        "P@ST /a HTTP/1.1\n\n": (1, "not a method"),
        "POST a HTTP/1.1\n\n": (1, "not a request target"),
        "POST /a HTTP/2\n\n": (1, "not HTTP/1.1"),
        "POST /a HTTP/1.1\nHost: h\nbroken line\n\n": (3, "not a header"),
        "POST /a HTTP/1.1\nBad Name: v\n\n": (2, "not a header name"),
        "POST /a HTTP/1.1\nX: \x01\n\n": (2, "control characters"),
        "POST /a HTTP/1.1\nX: a\rInjected: 1\n\n": (2, "control characters"),  # a lone CR
    }
    for text, (line, words) in cases.items():
        with pytest.raises(EditError, match=words) as caught:
            from_text(text)
        assert caught.value.line == line


def test_chunked_requests_are_chunked_again():
    req = ReplayRequest.from_head(
        b"POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", b"hello"
    )
    assert req.to_bytes().endswith(b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")


def test_a_cut_body_is_refused():
    e = stored(1, 200, b"", b"", b"abc")
    e.request_body = StoredBody(b"abc", True, 100)
    with pytest.raises(ReplayError, match="the body was cut at 3 bytes"):
        from_exchange(e)


def test_a_version_1_store_is_migrated_on_open(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE slices (n INTEGER PRIMARY KEY, first_id INTEGER NOT NULL,
            bytes INTEGER NOT NULL);
        CREATE TABLE exchanges (id INTEGER PRIMARY KEY AUTOINCREMENT, tunnel TEXT NOT NULL,
            time REAL NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, route TEXT NOT NULL,
            status INTEGER NOT NULL, duration_ms REAL NOT NULL, ttfb_ms REAL,
            bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL, client TEXT NOT NULL,
            http_version TEXT NOT NULL, headers TEXT NOT NULL, req_head BLOB NOT NULL,
            resp_head BLOB NOT NULL, req_body BLOB NOT NULL, resp_body BLOB NOT NULL,
            req_truncated INTEGER NOT NULL, resp_truncated INTEGER NOT NULL,
            req_size INTEGER NOT NULL, resp_size INTEGER NOT NULL, req_sha256 TEXT,
            resp_sha256 TEXT, req_search TEXT NOT NULL, resp_search TEXT NOT NULL,
            stored_bytes INTEGER NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1'), ('body_search', 'like');
        INSERT INTO exchanges VALUES (1, 'api', 0, 'GET', '/old', '/old', 200, 1, 1, 1, 1, 'c',
            '1.1', '', X'', X'', X'', X'', 0, 0, 0, 0, NULL, NULL, '', '', 10);
        """
    )
    db.close()
    with CaptureStore(path, create=False) as store:
        old = store.get(1)
        assert old is not None and old.path == "/old" and old.replay_of is None
        assert old.target == ""
        assert old.messages_protocol == "" and old.messages == [] and old.messages_closed
        store.add([stored(0, 200, b"", b"")])
        assert [e.path for e in store.select()] == ["/x", "/old"]
    check = sqlite3.connect(path)
    version = check.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    check.close()
    assert int(version) == SCHEMA_VERSION == 3  # 1 -> 2 (replays) -> 3 (messages)
