"""`requests replay --edit` shows the line of a refused edit: a visitor's header that holds an
escape sequence (the edit refuses it) is spelled out there, not obeyed by the terminal."""

from __future__ import annotations

import subprocess
import sys

from tests.inspector.records import ROOT_DIR, exchange, fill
from tests.support.cli import molehill_env

OSC52 = "\x1b]52;c;cm0gLXJmIH4=\x07"


def test_a_refused_edit_line_is_shown_without_its_controls(tmp_path):
    store = tmp_path / "c.sqlite3"
    fill(store, [("web", exchange("POST", "/x", 200, [("X-Note", f"hi{OSC52}")], b"{}"))])
    editor = tmp_path / "editor.py"
    editor.write_text("import sys\n")  # saves the message as it is
    done = subprocess.run(
        [sys.executable, "-m", "tui.cli", "requests", "replay", "1", "--edit",
         "--target", "http://127.0.0.1:1"],
        cwd=ROOT_DIR, capture_output=True, text=True, timeout=60,
        env=molehill_env({"MOLEHILL_CAPTURE_FILE": str(store),
                          "EDITOR": f"{sys.executable} {editor}"}),
    )  # fmt: skip
    assert done.returncode == 1 and "control characters" in done.stderr, done.stderr
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr
    assert "X-Note: hi\\x1b]52" in done.stderr
