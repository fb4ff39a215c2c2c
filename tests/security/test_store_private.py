"""The capture store holds visitors' requests and the app's answers (redacted of known secrets,
not of everything: an X-Api-Key header, an e-mail in a body): on a machine shared with other
users, only its owner may read it, whatever the umask."""

from __future__ import annotations

import os
import stat

from tests.inspector.records import exchange, fill


def test_a_new_store_and_its_directory_are_the_owners_alone(tmp_path):
    folder = tmp_path / "share" / "molehill"
    path = folder / "captures.sqlite3"
    old = os.umask(0o022)  # the usual: files 0644, directories 0755
    try:
        fill(path, [("web", exchange("POST", "/x", 200, [("X-Api-Key", "k-123")], b"{}"))])
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = [p for p in folder.iterdir() if p.name.startswith("captures.sqlite3")]
    assert path in files
    for file in files:  # the file, and its -wal / -shm while they exist
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
