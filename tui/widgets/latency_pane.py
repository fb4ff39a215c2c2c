"""The latency pane: a sparkline of recent durations and the tunnel's figures over a minute."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from relay.host import TunnelStatus
from tui.format import human_size, ms


class LatencyPane(Vertical):
    """Shows one TunnelStatus; ``show(None)`` for the empty state."""

    def compose(self) -> ComposeResult:
        yield Static("request duration (latest requests)", classes="pane-title")
        yield Sparkline([], id="durations")
        yield Static(id="figures")

    def show(self, status: TunnelStatus | None, empty: str = "no traffic yet") -> None:
        """``status`` None: no sparkline, and the ``empty`` message instead of the figures."""
        figures = self.query_one("#figures", Static)
        spark = self.query_one("#durations", Sparkline)
        spark.display = status is not None
        if status is None:
            spark.data = []
            figures.update(Text(empty, style="dim"))
            return
        stats = status.stats
        spark.data = list(stats.recent_ms)
        table = Table.grid(padding=(0, 2))
        table.add_column(style="dim")
        table.add_column(justify="right")
        table.add_column(style="dim")
        table.add_column(justify="right")
        table.add_row("p50", ms(stats.p50), "req/s", f"{stats.rps:.1f}")
        table.add_row("p90", ms(stats.p90), "errors", f"{stats.error_rate * 100:.1f}%")
        table.add_row("p99", ms(stats.p99), "open conns", str(status.open_streams))
        table.add_row("in", human_size(stats.bytes_in), "out", human_size(stats.bytes_out))
        table.add_row("relay RTT", ms(status.rtt_ms), "requests", str(stats.total_requests))
        figures.update(table)
