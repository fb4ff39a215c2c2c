"""The latency pane: p50/p99 per second as a time chart, and the tunnel's figures over a minute,
the local app's time apart from what the tunnel added, 4xx apart from 5xx."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical

from relay.host import TunnelStatus
from tui.format import human_size, ms
from tui.text_grid import GridColumn, grid_text
from tui.widgets.latency_chart import P50_STYLE, P99_STYLE, LatencyChart
from tui.widgets.steady_static import SteadyStatic

DIM = GridColumn(style="dim")
RIGHT = GridColumn(right=True)
# label, app, tunnel, label, figure
FIGURE_COLUMNS = (DIM, RIGHT, RIGHT, DIM, RIGHT)
TCP_COLUMNS = (DIM, RIGHT, RIGHT)  # label, in, out


def _title(seconds: int) -> Text:
    span = f"last {seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"last {seconds} s"
    text = Text(f"request duration per second, {span}   ")
    text.append("█", style=P50_STYLE)
    text.append(" p50  ")
    text.append("█", style=P99_STYLE)
    text.append(" p99   log scale")
    return text


def _share(rate: float) -> str:
    return f"{rate * 100:.1f}%"


class LatencyPane(Vertical):
    """Shows one TunnelStatus; ``show(None)`` for the empty state."""

    def compose(self) -> ComposeResult:
        yield SteadyStatic(_title(0), classes="pane-title", id="latency-title")
        yield LatencyChart(id="chart")
        yield SteadyStatic(id="figures")

    def show(self, status: TunnelStatus | None, empty: str = "no traffic yet") -> None:
        """``status`` None: no chart, and the ``empty`` message instead of the figures."""
        figures = self.query_one("#figures", SteadyStatic)
        chart = self.query_one("#chart", LatencyChart)
        chart.display = status is not None
        self.set_class(status is None, "-empty")  # app.tcss hides the chart's title then
        if status is None:
            chart.update_series(())
            figures.show(Text(empty, style="dim"))
            return
        stats = status.stats
        chart.update_series(stats.per_second)
        if status.tcp is not None:  # no requests in a TCP tunnel: its connections instead
            figures.show(_tcp_table(status))
            return
        # "app": the local app's time; "tunnel": what the agent added before the app could
        # start (docs/architecture.md says what each figure covers).
        conns = f"{status.open_streams} conn" + ("" if status.open_streams == 1 else "s")
        rows = [
            ("", "app", "tunnel", "req/s", f"{stats.rps:.1f}"),
            (
                "p50",
                ms(stats.app_p50),
                ms(stats.overhead_p50),
                "4xx",
                _share(stats.client_error_rate),
            ),
            (
                "p99",
                ms(stats.app_p99),
                ms(stats.overhead_p99),
                "5xx",
                _share(stats.server_error_rate),
            ),
            (
                "in/out",
                human_size(stats.bytes_in),
                human_size(stats.bytes_out),
                "no resp",
                _share(stats.failed_rate),
            ),
            ("RTT", ms(status.rtt_ms), conns, "reqs", str(stats.total_requests)),
        ]
        figures.show(grid_text(FIGURE_COLUMNS, rows))

    def on_latency_chart_span_changed(self, event: LatencyChart.SpanChanged) -> None:
        self.query_one("#latency-title", SteadyStatic).show(_title(event.seconds))


def _tcp_table(status: TunnelStatus) -> Text:
    """A TCP tunnel's live throughput each way, its connections and bytes moved."""
    tcp = status.tcp
    assert tcp is not None
    rows = [
        ("", "in", "out"),
        ("now", f"{human_size(int(tcp.rate_in))}/s", f"{human_size(int(tcp.rate_out))}/s"),
        ("total", human_size(tcp.bytes_in), human_size(tcp.bytes_out)),
        ("conns", f"{tcp.open} open", f"{tcp.total} total"),
        ("RTT", ms(status.rtt_ms), ""),
    ]
    return grid_text(TCP_COLUMNS, rows)
