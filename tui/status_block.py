"""An ngrok-like status block on a terminal, redrawn in place a few times a second."""

from __future__ import annotations

import asyncio
import os
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from relay import __version__
from relay.agent.links import AnyAgent
from relay.events import (
    AgentEvent,
    ConnectionRecord,
    Reconnected,
    Reconnecting,
    RequestRecord,
    TunnelClosed,
    TunnelOpen,
    TunnelRefused,
)
from relay.terminal_text import visible
from tui.format import human_size
from tui.report import human_line
from tui.status_figures import RequestFigures, tcp_figures

REDRAW_EVERY = 0.25  # seconds: at most four frames a second, whatever the traffic
LATEST = 10  # requests (or TCP connections) listed under the figures
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"
CLEAR_LINE, CLEAR_BELOW, CLEAR_SCREEN = "\x1b[2K", "\x1b[J", "\x1b[H\x1b[2J"


class Screen(Protocol):
    """Where frames go: a LineWriter (tui.output) on the terminal."""

    @property
    def pending(self) -> int: ...

    def write(self, text: str, /) -> None: ...


@dataclass
class TunnelLine:
    """What the block knows of one tunnel."""

    tag: str | None
    agent: AnyAgent
    state: str = "connecting"
    url: str = ""
    note: str = ""  # the latest reason it is not online
    latest: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=LATEST))


class StatusBlock:
    """Collects the tunnels' events; ``run()`` draws them until cancelled."""

    def __init__(self, screen: Screen, fd: int, relay: str) -> None:
        self.screen = screen
        self.fd = fd
        self.relay = relay
        self.tunnels: list[TunnelLine] = []
        self.figures = RequestFigures()
        self.latest: deque[tuple[str | None, RequestRecord | ConnectionRecord]] = deque(
            maxlen=LATEST
        )
        self.drawn = 0  # lines of the last frame, to move back over
        self.size: tuple[int, int] | None = None

    def hook(self, tag: str | None, agent: AnyAgent) -> TunnelHook:
        line = TunnelLine(tag, agent)
        self.tunnels.append(line)
        return TunnelHook(self, line)

    # -- drawing ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Redraw every REDRAW_EVERY seconds until cancelled; then leave the last frame up."""
        self.screen.write(HIDE_CURSOR)
        try:
            while True:
                self.draw()
                await asyncio.sleep(REDRAW_EVERY)
        finally:
            self.draw()
            self.screen.write(SHOW_CURSOR)

    def draw(self) -> None:
        if self.screen.pending:
            return  # the terminal has not taken the last frame: never queue frames behind it
        try:
            size = os.get_terminal_size(self.fd)
            width, height = size.columns or 80, size.lines or 24  # 0: the terminal did not say
        except OSError:
            width, height = 80, 24
        # Paths, URLs and reasons are the relay's and the visitors' text: their control
        # characters are spelled out (then cut to the width), never obeyed by the terminal.
        lines = [visible(line)[: max(1, width - 1)] for line in self.lines(height)]
        prefix = f"\x1b[{self.drawn}F" if self.drawn else ""
        if self.size != (width, height) and self.size is not None:
            prefix = CLEAR_SCREEN  # lines drawn at the old width may have wrapped: start over
        self.size = (width, height)
        self.drawn = len(lines)
        body = "".join(f"{CLEAR_LINE}{line}\n" for line in lines)
        self.screen.write(prefix + body + CLEAR_BELOW)

    def lines(self, height: int) -> list[str]:
        """The frame's lines, at most ``height - 1`` of them (the cursor's line stays free)."""
        online = sum(t.state == "online" for t in self.tunnels)
        if len(self.tunnels) == 1:
            status = self.tunnels[0].state
        elif online == len(self.tunnels):
            status = "online"
        else:
            status = f"{online}/{len(self.tunnels)} online"
        head = [
            f"{'molehill':<60}(Ctrl+C to quit)",
            "",
            _row("Tunnel status", status),
            _row("Version", __version__),
            _row("Relay", f"{self.relay}  {_rtt(self.tunnels)}"),
        ]
        for t in self.tunnels:
            tag = f"[{t.tag}] " if t.tag is not None and len(self.tunnels) > 1 else ""
            settings = t.agent.settings
            target = settings.local if settings.protocol == "tcp" else settings.local_url
            where = t.url or "(waiting for the relay)"
            head.append(_row("Forwarding", f"{tag}{where} -> {target}"))
            if t.state != "online" and t.note:
                head.append(_row("", f"{tag}{t.state}: {t.note}"))
        tcp = [t.agent.tcp for t in self.tunnels if t.agent.settings.protocol == "tcp"]
        if len(tcp) < len(self.tunnels):
            figures = self.figures.figures()
            http = [t for t in self.tunnels if t.agent.settings.protocol != "tcp"]
            open_now = sum(len(t.agent.link.streams) for t in http if t.agent.link)
            head += [
                "",
                _row("Connections", "ttl     opn     rt1     rt5     p50     p90"),
                _row(
                    "",
                    f"{figures.total:<8}{open_now:<8}{figures.rate_1m:<8.2f}"
                    f"{figures.rate_5m:<8.2f}{_ms(figures.p50):<8}{_ms(figures.p90):<8}",
                ),
            ]
        if tcp:
            conns = tcp_figures(tcp)
            label = "Connections" if len(tcp) == len(self.tunnels) else "TCP connections"
            head += [
                "",
                _row(label, "ttl     opn     in/s        out/s"),
                _row(
                    "",
                    f"{conns.total:<8}{conns.open:<8}{_rate(conns.rate_in):<12}"
                    f"{_rate(conns.rate_out):<12}",
                ),
            ]
        title = (  # what the lines below list
            "HTTP Requests"
            if not tcp
            else "TCP Connections"
            if len(tcp) == len(self.tunnels)
            else "Requests and TCP Connections"
        )
        head += ["", title, "-" * len(title)]
        room = max(0, height - 1 - len(head))
        requests = list(self.latest)[-room:] if room else []
        shown = []
        for req_tag, record in reversed(requests):  # newest first, as ngrok does
            text = human_line(record)
            tagged = req_tag is not None and len(self.tunnels) > 1
            shown.append(f"[{req_tag}] {text}" if tagged else text)
        return (head + shown)[: max(1, height - 1)]


class TunnelHook:
    """One agent's on_event: updates the block (which draws on its own schedule)."""

    def __init__(self, block: StatusBlock, line: TunnelLine) -> None:
        self.block = block
        self.line = line

    def __call__(self, event: AgentEvent) -> None:
        line = self.line
        if type(event) is RequestRecord:
            self.block.figures.add(event)
            self.block.latest.append((line.tag, event))
        elif type(event) is ConnectionRecord:
            self.block.latest.append((line.tag, event))
        elif isinstance(event, TunnelOpen | Reconnected):
            line.state, line.url, line.note = "online", event.url, ""
        elif isinstance(event, Reconnecting):
            line.state = "reconnecting" if line.url else "connecting"
            line.note = f"{event.reason}; retrying in {event.delay:.1f}s"
        elif isinstance(event, TunnelRefused):
            line.state, line.note = "refused", event.message
        elif isinstance(event, TunnelClosed):
            line.state = "closed"

    def flush(self) -> None:
        """Nothing waits here: the block draws on its own schedule."""


def _row(label: str, value: str) -> str:
    return f"{label:<18}{value}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}ms" if value >= 100 else f"{value:.1f}ms"


def _rate(bytes_per_second: float) -> str:
    return f"{human_size(int(bytes_per_second))}/s"


def _rtt(tunnels: list[TunnelLine]) -> str:
    rtts = [t.agent.rtt for t in tunnels if t.agent.rtt is not None]
    return f"(RTT {min(rtts) * 1000:.1f}ms)" if rtts else ""
