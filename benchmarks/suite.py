"""Every scenario run.py knows, in run order, and the targets (issue 6, and issue 11's core v2).

Targets refer to metrics by key (``Metric.key``); a target whose metrics were not measured (a
``--scenarios`` subset) is left out. Each prints as ``met`` or ``MISSED`` with the figure.
"""

from __future__ import annotations

from dashboard import Dashboard
from loadagents import IdleTunnels
from scenarios import HTTP_SCENARIOS, Scenario, Target
from streams import Streams
from transfer import Transfer
from wsecho import WsEcho

SCENARIOS: list[Scenario] = [
    *HTTP_SCENARIOS,
    WsEcho(),
    Transfer(),
    Streams(),
    IdleTunnels(),
    Dashboard(),
]

TARGETS = [
    # Core v2 (issue 11): ratios to direct and CPU per request, the figures that travel.
    Target("relay + agent CPU per keep-alive request", ("keepalive.cpu_us",), 35, False, "µs", 1),
    Target("keep-alive, tunnel / direct", ("keepalive.ratio",), 0.20, True, "", 2),
    Target("64 KiB responses, tunnel / direct", ("64k.ratio",), 0.25, True, "", 2),
    Target("new connection per request, tunnel / direct", ("newconn.ratio",), 0.30, True, "", 2),
    Target(
        "keep-alive through the tunnel, 32 connections, request log on",
        ("keepalive.rps",),
        18_000,
        True,
        "req/s",
    ),
    Target(
        "sequential added latency, mean", ("sequential.added_ms",), 0.10, False, "ms", 3, floor=0.0
    ),
    Target("64 KiB responses through the tunnel", ("64k.mb_per_s",), 500, True, "MB/s", 1),
    Target("new connection per request through the tunnel", ("newconn.rps",), 3_000, True, "req/s"),
    Target(
        "WebSocket echo round trip through the tunnel: mean, tunnel / direct",
        ("wsecho.ratio",),
        1.5,
        False,
        "",
        2,
        floor=1.0,
    ),
    Target(
        "1 GB transfer at bounded memory: peak RSS growth of relay and agent (worst)",
        tuple(
            f"transfer.{d}.{r}_rss_growth_mib"
            for d in ("download", "upload")
            for r in ("relay", "agent")
        ),
        32,
        False,
        "MiB",
        1,
    ),
    Target(
        "1,000 concurrent long-polls and SSE streams: all completed, all events received",
        ("streams.poll.complete_pct", "streams.sse.complete_pct"),
        100,
        True,
        "%",
        1,
    ),
    Target(
        "1,000 concurrent streams at bounded memory: RSS per open stream, relay and agent (worst)",
        tuple(
            f"streams.{k}.{r}_kib_per_stream" for k in ("poll", "sse") for r in ("relay", "agent")
        ),
        50,
        False,
        "KiB",
        1,
    ),
    Target("relay memory per idle tunnel", ("idle.relay_kib_per_tunnel",), 50, False, "KiB", 1),
    Target(
        "the dashboard costs <= 10% of throughput: dashboard / headless keep-alive req/s",
        ("dashboard.ratio",),
        0.90,
        True,
        "",
        2,
    ),
    Target(
        "UI responsiveness at ~2,000 req/s: key press to redraw, p99",
        ("dashboard.key_p99_ms",),
        100,
        False,
        "ms",
        1,
    ),
]
