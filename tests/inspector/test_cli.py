"""`molehill requests ...` as real processes, on a store filled through a real CaptureWriter."""

from __future__ import annotations

import json
import time

from inspector import CaptureSettings, open_writer
from tests.inspector.records import corpus, exchange, fill, molehill


def test_list_shows_the_newest_first_as_a_table(tmp_path):
    path = tmp_path / "c.sqlite3"
    fill(path, corpus())
    done = molehill(path, "requests", "list", "--limit", "3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "ID",
        "TIME",
        "TUNNEL",
        "METHOD",
        "STATUS",
        "DURATION",
        "SIZE",
        "PATH",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["60", "59", "58"]
    assert lines[2].split()[3:7] == ["frontend", "PUT", "500", "646"]  # id 59
    assert lines[2].endswith("  /webhook")


def test_list_filters_and_prints_json_lines(tmp_path):
    path = tmp_path / "c.sqlite3"
    items = corpus()
    fill(path, items)
    done = molehill(path, "requests", "list", "status:5xx", "method:POST", "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    expected = [i + 1 for i, (_, r) in enumerate(items) if r.status >= 500 and r.method == "POST"][
        ::-1
    ]
    assert [row["id"] for row in rows] == expected and expected
    assert set(rows[0]) >= {"id", "tunnel", "time", "method", "path", "status", "duration_ms"}
    quoted = molehill(path, "requests", "list", "method:POST -status:5xx", "--json")
    after_dashes = molehill(path, "requests", "list", "--json", "--", "method:POST", "-status:5xx")
    assert quoted.stdout == after_dashes.stdout and quoted.stdout
    assert all(json.loads(line)["status"] < 500 for line in quoted.stdout.splitlines())
    by_tunnel = molehill(path, "requests", "list", "--tunnel", "hooks", "--json", "--limit", "100")
    assert {json.loads(line)["tunnel"] for line in by_tunnel.stdout.splitlines()} == {"hooks"}
    assert len(by_tunnel.stdout.splitlines()) == 20


def test_a_bad_filter_is_pointed_at(tmp_path):
    path = tmp_path / "c.sqlite3"
    fill(path, corpus()[:3])
    done = molehill(path, "requests", "list", "status:5xx", "dur:fast")
    assert done.returncode == 2
    assert "column 12" in done.stderr and "dur:fast" in done.stderr and "Accepted:" in done.stderr
    assert "  status:5xx dur:fast\n" + " " * 13 + "^" in done.stderr
    assert done.stdout == ""


def test_show_prints_heads_and_bodies_and_json(tmp_path):
    path = tmp_path / "c.sqlite3"
    binary = b"\x00\x01\x02PNG" + bytes(range(200, 256))
    fill(path, [("api", exchange(
        "POST", "/api/login", 401, [("Content-Type", "application/json")],
        b'{"user": "ann"}', [("Content-Type", "image/png")], binary,
    ))])  # fmt: skip
    done = molehill(path, "requests", "show", "1")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "POST /api/login HTTP/1.1\nHost: app.tunnel.example" in out
    assert '{"user": "ann"}' in out and "HTTP/1.1 401" in out
    assert "00000000  00 01 02 50 4e 47" in out  # binary as hex
    data = json.loads(molehill(path, "requests", "show", "1", "--json").stdout)
    assert data["id"] == 1 and data["status"] == 401
    assert data["request"]["body"]["text"] == '{"user": "ann"}'
    assert ["Content-Type", "image/png"] in data["response"]["headers"]
    assert "base64" in data["response"]["body"] and "text" not in data["response"]["body"]


def test_unknown_ids_missing_and_corrupt_stores_are_clear_errors(tmp_path):
    path = tmp_path / "c.sqlite3"
    fill(path, corpus()[:2])
    done = molehill(path, "requests", "show", "99")
    assert done.returncode == 1 and "no captured request 99" in done.stderr
    missing = tmp_path / "nothing-yet.sqlite3"
    listed = molehill(missing, "requests", "list")
    assert (
        listed.returncode == 0
        and "no captures yet" in listed.stderr
        and str(missing) in listed.stderr
    )
    assert not missing.exists()
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"garbage" * 1000)
    for args in (["list"], ["show", "1"], ["curl", "1"], ["clear"], ["export", "--har", "-"]):
        done = molehill(bad, "requests", *args)
        assert done.returncode == 1, args
        assert str(bad) in done.stderr and "Traceback" not in done.stderr
    assert bad.read_bytes() == b"garbage" * 1000


def test_the_commands_read_while_another_process_writes(tmp_path):
    path = tmp_path / "c.sqlite3"
    writer = open_writer(CaptureSettings(path=path))
    assert writer is not None
    try:
        writer.submit("api", exchange("GET", "/one"))
        assert writer.flush()
        first = molehill(path, "requests", "list", "--json")
        assert [json.loads(x)["path"] for x in first.stdout.splitlines()] == ["/one"]
        for i in range(200):
            writer.submit("api", exchange("GET", f"/more/{i}"))
        deadline = time.monotonic() + 5
        counts = []
        while time.monotonic() < deadline:
            done = molehill(path, "requests", "list", "path:/more/*", "--json", "--limit", "500")
            assert done.returncode == 0, done.stderr
            counts.append(len(done.stdout.splitlines()))
            if counts[-1] == 200:
                break
        assert counts[-1] == 200
    finally:
        writer.close()
    after = molehill(path, "requests", "list", "--json", "--limit", "1000")
    assert len(after.stdout.splitlines()) == 201  # and after it quits


def test_clear_one_tunnel_then_all(tmp_path):
    path = tmp_path / "c.sqlite3"
    fill(path, corpus()[:9])
    done = molehill(path, "requests", "clear", "--tunnel", "hooks")
    assert (
        done.returncode == 0
        and done.stdout.strip() == "deleted 3 captured requests of tunnel hooks"
    )
    left = molehill(path, "requests", "list", "--json", "--limit", "100").stdout.splitlines()
    assert len(left) == 6 and all(json.loads(x)["tunnel"] != "hooks" for x in left)
    assert molehill(path, "requests", "clear").stdout.strip() == "deleted 6 captured requests"


def test_help_lists_the_commands(tmp_path):
    done = molehill(tmp_path / "c.sqlite3", "requests", "--help")
    assert done.returncode == 0
    for command in ("list", "show", "curl", "export", "clear", "replay", "diff"):
        assert command in done.stdout


def test_an_exchange_captured_without_heads_still_shows_and_exports(tmp_path):
    path = tmp_path / "c.sqlite3"
    fill(path, [("api", exchange("GET", "/bare?x=1", 204, capture_bytes=0))])
    shown = molehill(path, "requests", "show", "1")
    assert shown.returncode == 0, shown.stderr
    assert "GET /bare?x=1 HTTP/1.1\n(heads and bodies were not captured)" in shown.stdout
    har = molehill(path, "requests", "export", "--har", "-")
    assert (
        har.returncode == 0
        and json.loads(har.stdout)["log"]["entries"][0]["response"]["status"] == 204
    )
