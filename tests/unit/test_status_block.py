"""The status block's figures and frames, without a terminal: rates over one and five minutes,
lines cut to the width, and no frame queued behind one the terminal has not taken."""

from __future__ import annotations

import os

import pytest

from relay.agent import Agent, AgentSettings
from relay.events import RequestRecord, TunnelOpen
from tui.output import LineWriter
from tui.status_block import StatusBlock
from tui.status_figures import RequestFigures


def record(ms: float = 5.0, path: str = "/") -> RequestRecord:
    return RequestRecord(0.0, "GET", path, 200, ms, 100, 200, "127.0.0.1", 1)


def test_rates_cover_one_and_five_minutes():
    figures = RequestFigures()
    for second in range(240):  # one request a second for four minutes
        figures.add(record(), now=1000.0 + second)
    now = 1000.0 + 239.5
    got = figures.figures(now)
    assert got.total == 240
    assert got.rate_1m == pytest.approx(60 / 60)
    assert got.rate_5m == pytest.approx(240 / 300)
    later = figures.figures(now + 120)  # two quiet minutes later
    assert later.rate_1m == 0
    assert later.rate_5m == pytest.approx(180 / 300)  # the first minute has left the window
    assert figures.figures(now + 1000).rate_5m == 0
    assert figures.figures(now + 1000).total == 240  # the total never expires


def test_percentiles_come_from_the_durations():
    figures = RequestFigures()
    for ms in [1.0] * 50 + [100.0] * 50:
        figures.add(record(ms), now=50.0)
    got = figures.figures(50.0)
    assert got.p50 == pytest.approx(1.0, rel=0.05)
    assert got.p90 == pytest.approx(100.0, rel=0.05)
    assert RequestFigures().figures(0.0).p50 is None


class Screen:
    """Collects frames; ``pending`` as a terminal that has not read them would report."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.pending = 0

    def write(self, text: str) -> None:
        self.frames.append(text)


def block_with_traffic(screen, fd: int = -1) -> StatusBlock:
    block = StatusBlock(screen, fd, "ws://127.0.0.1:7000")
    agent = Agent(AgentSettings(3000, local_host="localhost", local_tls=True))
    hook = block.hook(None, agent)
    hook(TunnelOpen("x" * 50, "http://" + "x" * 50 + ".localhost:8080", agent.settings.local))
    for i in range(30):
        hook(record(path=f"/path/{i}/" + "y" * 100))
    return block


def test_frames_fit_the_size_and_keep_the_newest_requests():
    block = block_with_traffic(Screen())
    lines = block.lines(height=20)
    assert len(lines) == 19
    assert "-> https://localhost:3000" in next(x for x in lines if x.startswith("Forwarding"))
    requests = [x for x in lines if "/path/" in x]
    assert "/path/29/" in requests[0]  # newest first
    assert len(block.lines(height=100)) == 12 + 10  # the head and the latest ten
    assert len(block.lines(height=3)) == 2


def test_a_frame_without_a_known_size_fits_80_by_24():
    screen = Screen()
    block = block_with_traffic(screen)  # fd -1: no terminal to ask, so 80x24
    block.draw()
    block.draw()
    first, second = screen.frames
    assert first.startswith("\x1b[2Kmolehill")  # the first frame starts where the cursor is
    assert second.startswith("\x1b[22F")  # the next one goes back over the lines drawn
    lines = first.split("\n")[:-1]
    assert len(lines) == 12 + 10  # the head and the latest ten: within 23 lines
    assert all(len(line.removeprefix("\x1b[2K")) <= 79 for line in lines)


def test_no_frame_is_queued_behind_one_the_terminal_has_not_taken():
    read_end, write_end = os.pipe()
    try:
        os.set_blocking(write_end, False)
        while True:  # fill the pipe: the terminal (nobody) reads nothing now
            try:
                os.write(write_end, b"x" * 65536)
            except BlockingIOError:
                break
        writer = LineWriter(write_end, as_json=False)
        block = block_with_traffic(writer, write_end)
        block.draw()
        first = writer.pending
        assert first > 0  # one frame waits for the reader
        for _ in range(20):
            block.draw()
        assert writer.pending == first  # and only that one: later frames were skipped
        writer.close(timeout=0)
    finally:
        os.close(read_end)
        os.close(write_end)
