"""`molehill requests export --har` writes its file a page at a time, with the API's paged writer:
the same bytes as the whole document written at once, 0600, and no cut HAR left behind."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from inspector import CaptureStore, pages
from inspector.errors import StoreError
from inspector.export import har_log
from inspector.filters import parse
from tests.inspector.records import molehill
from tests.inspector.test_api_streaming import _small_store
from tui.cli import main


def expected(path: Path, flt: str = "", tunnel: str | None = None, url: str | None = None) -> bytes:
    """What the export wrote before it was paged: json.dumps of har_log, indent 1, a newline."""
    with CaptureStore(path, create=False) as store:
        found = store.select(parse(flt) if flt else None, tunnel=tunnel, full=True)
    return (json.dumps(har_log(found[::-1], url), indent=1) + "\n").encode()


def test_the_export_is_written_in_pages_and_is_the_same_document(tmp_path, monkeypatch, capsys):
    path = tmp_path / "c.sqlite3"
    _small_store(path)
    monkeypatch.setattr(pages, "PAGE_ROWS", 4)
    reads = []
    select = CaptureStore.select

    def counted(self, *args, **kwargs):
        reads.append(kwargs.get("between"))
        return select(self, *args, **kwargs)

    monkeypatch.setattr(CaptureStore, "select", counted)
    out = tmp_path / "all.har"
    args = ["requests", "export", "--har", str(out), "--store", str(path)]
    assert main([*args, "--url", "http://localhost:3000"]) == 0
    assert "wrote 71 requests" in capsys.readouterr().err
    assert out.read_bytes() == expected(path, url="http://localhost:3000")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert len([r for r in reads if r is not None]) >= 71 // 4  # a query per page of four
    reads.clear()
    assert main([*args, "--tunnel", "backend", "--", "-status:2xx"]) == 0
    assert out.read_bytes() == expected(path, "-status:2xx", "backend")
    assert len(json.loads(out.read_bytes())["log"]["entries"]) == 12 and len(reads) > 3


def test_the_export_to_stdout_as_a_process(tmp_path):
    path = tmp_path / "c.sqlite3"
    _small_store(path)
    done = molehill(path, "requests", "export", "--har", "-", "--", "status:5xx")
    assert done.returncode == 0, done.stderr
    assert done.stdout.encode() == expected(path, "status:5xx")
    empty = molehill(tmp_path / "none.sqlite3", "requests", "export", "--har", "-")
    assert empty.returncode == 0 and json.loads(empty.stdout)["log"]["entries"] == []


def test_an_export_the_store_cannot_finish_leaves_no_file(tmp_path, monkeypatch, capsys):
    path = tmp_path / "c.sqlite3"
    _small_store(path)
    monkeypatch.setattr(pages, "PAGE_ROWS", 4)
    real = pages.PagedDocument.next_piece

    def failing(self, store):
        if self.written >= 8:
            raise StoreError(path, "database disk image is malformed")
        return real(self, store)

    monkeypatch.setattr(pages.PagedDocument, "next_piece", failing)
    out = tmp_path / "all.har"
    out.write_text("an older export")
    assert main(["requests", "export", "--har", str(out), "--store", str(path)]) == 1
    err = capsys.readouterr().err
    assert "malformed" in err and "unfinished file is removed" in err and not out.exists()
    assert main(["requests", "export", "--har", "-", "--store", str(path)]) == 1
    captured = capsys.readouterr()
    assert "the export stopped after 8 requests" in captured.err
