"""Visitors' text on the developer's terminal: `molehill requests show` and `diff` spell out
control characters instead of sending them (ESC and CSI start escape sequences; OSC 52 fills the
clipboard)."""

from __future__ import annotations

import pytest

from relay.agent.observe import ExchangeObserver
from relay.events import RequestRecord
from relay.terminal_text import has_controls, visible
from tests.inspector.records import fill, molehill, observe, request_bytes, response_bytes

CLIPBOARD = "\x1b]52;c;ZWNobyBwd25lZA==\x1b\\"
CSI_8BIT = "\u009b"  # what bytes C2 9B in a header read as Latin-1 give: Â and CSI
NEW_VALUE = f"new{CSI_8BIT}value".encode().decode("latin-1")


@pytest.mark.parametrize(
    ("text", "lines", "shown"),
    [
        ("plain: [/bold] stays", False, "plain: [/bold] stays"),
        ("a\x1b[2Jb", False, "a\\x1b[2Jb"),
        (f"x{CSI_8BIT}31m", False, "x\\x9b31m"),
        ("del\x7f nul\x00 bell\x07", False, "del\\x7f nul\\x00 bell\\x07"),
        ("one\ntwo\tthree", False, "one\\x0atwo\\x09three"),
        ("one\r\ntwo\tthree\n", True, "one\ntwo\tthree\n"),
        ("over\rwrite", True, "over\\x0dwrite"),
        ("café ü 日本 \u00a0", False, "café ü 日本 \u00a0"),  # printable beyond ASCII stays
    ],
)
def test_visible_spells_out_controls_and_keeps_the_rest(text, lines, shown):
    assert visible(text, lines=lines) == shown


def test_has_controls_ignores_line_ends_and_tabs_only():
    assert not has_controls("a\r\nb\tc\n")
    assert has_controls("a\x1b") and has_controls(f"a{CSI_8BIT}") and has_controls("\x7f")


def _with_events(request: bytes, response: bytes) -> RequestRecord:
    """The record of an event stream, its events read as the agent reads them."""
    out: list[RequestRecord] = []
    observer = ExchangeObserver("203.0.113.7", 1, out.append, 1 << 20, "127.0.0.1:3000", 100)
    observer.request_bytes(request)
    observer.response_bytes(response)
    observer.close(0)
    [record] = out
    return record


def _hostile_store(tmp_path):
    path = tmp_path / "c.sqlite3"
    header_value = "[/bold] \xc2\x9b2J"  # UTF-8 of CSI as it would arrive, read as Latin-1
    sse = f"event: tick{CLIPBOARD}\ndata: \x1b[2Jcleared\n\n".encode()
    fill(
        path,
        [
            (
                "api",
                _with_events(
                    request_bytes("GET", "/events", [("X-Evil", header_value)]),
                    response_bytes(200, [("Content-Type", "text/event-stream")], sse),
                ),
            ),
            (
                "api",
                observe(
                    request_bytes("GET", "/events", []),
                    response_bytes(
                        200, [("X-Evil", f"new{CSI_8BIT}value".encode().decode("latin-1"))]
                    ),
                ),
            ),
        ],
    )
    return path


def test_show_and_diff_never_print_a_control_character(tmp_path):
    path = _hostile_store(tmp_path)
    shown = molehill(path, "requests", "show", "1")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "X-Evil: [/bold] Â\\x9b2J" in out
    assert "\\x1b]52;c;" in out and "\\x1b[2Jcleared" in out  # the events, spelled out
    assert not has_controls(out), repr(out)
    diffed = molehill(path, "requests", "diff", "1", "2")
    assert diffed.returncode == 0, diffed.stderr
    assert "x-evil" in diffed.stdout.lower() and "\\x9bvalue" in diffed.stdout
    assert not has_controls(diffed.stdout), repr(diffed.stdout)
