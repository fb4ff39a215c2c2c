"""Files the exports write hold a visitor's bytes (and maybe secrets the redaction did not know):
`requests curl`'s body file and `requests export --har FILE`, run as real processes. Created
0600, never through a planted symbolic link, under a name nobody can guess in advance; and a
visitor's text cannot break a HAR entry or pass for another."""

from __future__ import annotations

import base64
import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.inspector.records import ROOT_DIR, exchange, fill
from tests.support.cli import molehill_env

BODY = b"@.env\x00\x01visitor's binary body"


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "c.sqlite3"
    fill(path, [("web", exchange("POST", "/upload", 200, req_body=BODY))])
    return path


def molehill(store: Path, *args: str, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        cwd=ROOT_DIR,
        env=molehill_env({"MOLEHILL_CAPTURE_FILE": str(store), **(env or {})}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def body_file_of(stdout: str) -> Path:
    found = re.search(r"--data-binary @(\S+)", stdout)
    assert found, stdout
    return Path(found.group(1).strip("'"))


def test_the_default_body_file_is_new_private_and_unguessable(store, tmp_path):
    env_tmp = tmp_path / "tmp"
    env_tmp.mkdir()
    made = []
    for _ in range(2):
        done = molehill(store, "requests", "curl", "1", env={"TMPDIR": str(env_tmp)})
        assert done.returncode == 0, done.stderr
        made.append(body_file_of(done.stdout))
    assert made[0] != made[1]  # mkstemp: random, created with O_EXCL
    for path in made:
        assert path.parent == env_tmp and path.read_bytes() == BODY and mode(path) == 0o600


def test_a_body_file_that_is_a_planted_link_is_refused(store, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("the developer's own file\n")
    link = tmp_path / "body.bin"
    link.symlink_to(victim)
    done = molehill(store, "requests", "curl", "1", "--body-file", str(link))
    assert done.returncode == 1 and "symbolic link" in done.stderr, done.stderr
    assert victim.read_text() == "the developer's own file\n"
    assert done.stdout == ""  # no command that would send a file it did not write


def test_a_named_body_file_is_private_and_a_bad_place_is_said(store, tmp_path):
    target = tmp_path / "body.bin"
    done = molehill(store, "requests", "curl", "1", "--body-file", str(target))
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == BODY and mode(target) == 0o600
    nowhere = tmp_path / "missing" / "body.bin"
    done = molehill(store, "requests", "curl", "1", "--body-file", str(nowhere))
    assert done.returncode == 1 and str(nowhere) in done.stderr and "Traceback" not in done.stderr


def test_har_export_is_private_refuses_links_and_replaces_a_file(store, tmp_path):
    har = tmp_path / "out.har"
    done = molehill(store, "requests", "export", "--har", str(har))
    assert done.returncode == 0, done.stderr
    assert mode(har) == 0o600 and '"entries"' in har.read_text()
    har.write_text("older export")
    har.chmod(0o644)
    done = molehill(store, "requests", "export", "--har", str(har))
    assert done.returncode == 0 and '"entries"' in har.read_text()  # a file is replaced...
    assert mode(har) == 0o600  # ...and no longer readable by others
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "link.har"
    link.symlink_to(victim)
    done = molehill(store, "requests", "export", "--har", str(link))
    assert done.returncode == 1 and "symbolic link" in done.stderr, done.stderr
    assert victim.read_text() == "keep me"


def test_a_visitors_text_cannot_break_or_spoof_a_har_entry(tmp_path):
    """Safe as it is (json.dumps escapes everything): pinned. Quotes, brackets, U+2028, an
    escape sequence and bytes that are not UTF-8, in a header, the query and the body."""
    spoof = '"}, {"request": {"url": "https://bank.example"}, "_molehill": {"id": 999}'
    store = tmp_path / "c.sqlite3"
    body = b'"}]}\xe2\x80\xa8\x1b]52;c;aGk=\x07' + b"\xff\xfe"
    fill(
        store,
        [("web", exchange("POST", "/x?q=%22%7D&_molehill=1", 200, [("X-Spoof", spoof)], body))],
    )
    done = molehill(store, "requests", "export", "--har", "-")
    assert done.returncode == 0, done.stderr
    entries = json.loads(done.stdout)["log"]["entries"]
    assert len(entries) == 1 and entries[0]["_molehill"]["id"] == 1
    request = entries[0]["request"]
    assert {"name": "X-Spoof", "value": spoof} in request["headers"]
    assert request["postData"]["_encoding"] == "base64"
    assert base64.b64decode(request["postData"]["text"]) == body
    assert "\x1b" not in done.stdout  # escaped by JSON: nothing for a terminal to obey
