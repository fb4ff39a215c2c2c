"""The headless request log: request lines leave in batches, other events at once."""

from __future__ import annotations

import asyncio
import io
import json

from relay.events import LinkChanged, RequestRecord, TunnelClosed, TunnelOpen
from tui.report import FLUSH_EVERY, Reporter, human_line


class CountingStream(io.StringIO):
    """A text stream that counts the writes it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def record(path: str, status: int = 200) -> RequestRecord:
    return RequestRecord(0.0, "GET", path, status, 1.5, 100, 2048, "127.0.0.1", 1)


async def test_request_lines_are_written_together_after_a_short_delay():
    out = CountingStream()
    report = Reporter(as_json=False, out=out)
    for i in range(100):
        report(record(f"/r{i}"))
    assert out.getvalue() == ""
    await asyncio.sleep(FLUSH_EVERY * 3)
    lines = out.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == [f"/r{i}" for i in range(100)]
    assert out.writes == 1
    assert "200  1.5ms  100B in 2.0KB out" in lines[0]


async def test_other_events_go_out_at_once_after_pending_requests():
    out = CountingStream()
    report = Reporter(as_json=True, tag="web", out=out)
    report(TunnelOpen("web", "http://web.localhost:8080", "127.0.0.1:3000"))
    assert json.loads(out.getvalue())["event"] == "tunnel_open"
    report(record("/a"))
    report(TunnelClosed("web", "stopped"))
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["tunnel_open", "request", "closed"]
    assert all(e["profile"] == "web" for e in events)


def test_outside_a_loop_every_line_is_written_at_once():
    out = CountingStream()
    report = Reporter(as_json=False, out=out)
    report(record("/x"))
    assert "/x" in out.getvalue()


async def test_flush_writes_what_is_pending():
    out = CountingStream()
    report = Reporter(as_json=False, out=out)
    report(record("/last"))
    report.flush()
    assert "/last" in out.getvalue()


def test_a_failed_request_line_says_why_and_json_has_the_fields():
    failed = RequestRecord(
        0.0,
        "GET",
        "/x",
        502,
        0.5,
        30,
        0,
        "127.0.0.1",
        1,
        failure="local app refused the connection (127.0.0.1:3000)",
        failure_kind="refused",
    )
    line = human_line(failed)
    assert line.endswith(
        "GET     /x  502  0.5ms  30B in 0B out  local app refused the connection (127.0.0.1:3000)"
    )
    assert human_line(record("/ok")).endswith("out")  # a healthy line has no reason
    data = json.loads(json.dumps(failed.to_json()))
    assert data["failure_kind"] == "refused"
    assert data["failure"] == "local app refused the connection (127.0.0.1:3000)"
    assert data["app_ms"] is None and data["overhead_ms"] is None
    timed = RequestRecord(
        0.0, "GET", "/", 200, 12.34567, 1, 1, "c", 1, app_ms=10.00049, overhead_ms=2.3451
    )
    assert (timed.to_json()["app_ms"], timed.to_json()["overhead_ms"]) == (10.0, 2.345)


def test_a_link_of_an_agent_with_several_links_reads_as_a_line_and_json():
    down = LinkChanged("app", "ws://b:7000", False, "connection reset", 1, 2)
    assert human_line(down) == (
        "tunnel 'app': link through ws://b:7000 down (connection reset); 1 of 2 links up"
    )
    up = LinkChanged("app", "ws://b:7000", True, "", 2, 2)
    assert human_line(up) == "tunnel 'app': link through ws://b:7000 up; 2 of 2 links up"
    out = io.StringIO()
    Reporter(True, out=out)(up)
    assert json.loads(out.getvalue()) == {
        "event": "link",
        "name": "app",
        "relay": "ws://b:7000",
        "up": True,
        "reason": "",
        "links_up": 2,
        "links": 2,
    }


def test_control_characters_from_a_relay_or_a_visitor_are_spelled_out(capsys):
    """A relay chooses the URL and the refusal message, and paths come through it: a hostile or
    broken one must not drive the terminal (OSC 52 would fill the clipboard)."""
    from relay.events import TunnelRefused

    out = CountingStream()
    report = Reporter(as_json=False, out=out)
    report(TunnelOpen("web", "http://web.example\x1b]52;c;ZWNobyBoaQ==\x07", "127.0.0.1:3000"))
    report(record("/\x1b[2J\u009b31m"))
    report.flush()
    text = out.getvalue()
    assert "\\x1b]52;c;ZWNobyBoaQ==\\x07" in text and "/\\x1b[2J\\x9b31m" in text
    assert all(c in "\n" or c >= " " for c in text) and "\x9b" not in text
    report(TunnelRefused("web", "taken", "name taken\x1b[2J"))
    assert "name taken\\x1b[2J" in capsys.readouterr().err
    as_json = CountingStream()
    Reporter(as_json=True, out=as_json)(record("/\x1b[2J"))
    assert json.loads(as_json.getvalue())["path"] == "/\x1b[2J"  # JSON keeps it, escaped
    assert "\x1b" not in as_json.getvalue()
