"""Prometheus text exposition of a relay's figures, served at /metrics on the agents' port."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relay.server import Relay

# Seconds from a request head reaching the relay to its response head leaving the agent.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Histogram:
    """Cumulative-at-render histogram; observe() is one bisect and two adds."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds

    def lines(self, name: str) -> list[str]:
        out = []
        running = 0
        for bound, count in zip(BUCKETS, self.counts, strict=False):
            running += count
            out.append(f'{name}_bucket{{le="{bound}"}} {running}')
        running += self.counts[-1]
        out.append(f'{name}_bucket{{le="+Inf"}} {running}')
        out.append(f"{name}_sum {self.sum:.6f}")
        out.append(f"{name}_count {running}")
        return out


# Why a TCP connection was turned away (relay/server/tcp_listener.py's rules): always listed,
# so a dashboard's query has a series from the start.
TCP_REFUSALS = (
    "tunnel_offline", "per_ip", "allow_deny", "rate", "max_client_share", "streams_per_agent",
)  # fmt: skip


def render(relay: Relay) -> str:
    tcp = relay.tcp
    tcp_in = sum(c.bytes_from_socket for c in tcp.connections)
    tcp_out = sum(c.bytes_to_socket for c in tcp.connections)
    live_in = sum(c.bytes_from_socket for c in relay.public_connections) + tcp_in
    live_out = sum(c.bytes_to_socket for c in relay.public_connections) + tcp_out
    streams = sum(len(s.streams) for s in relay.tunnels.values())
    lines = [
        "# HELP molehill_tunnels Tunnels online.",
        "# TYPE molehill_tunnels gauge",
        f"molehill_tunnels {len(relay.tunnels)}",
        "# HELP molehill_leases Names held for disconnected agents.",
        "# TYPE molehill_leases gauge",
        f"molehill_leases {len(relay.leases)}",
        "# HELP molehill_agent_connections Agent websocket connections.",
        "# TYPE molehill_agent_connections gauge",
        f"molehill_agent_connections {sum(1 for s in relay.sessions if s.handshake_done)}",
        "# HELP molehill_streams Visitor connections carried by tunnels.",
        "# TYPE molehill_streams gauge",
        f"molehill_streams {streams}",
        "# HELP molehill_public_connections Open visitor connections.",
        "# TYPE molehill_public_connections gauge",
        f"molehill_public_connections {len(relay.public_connections)}",
        "# HELP molehill_bytes_total Bytes carried for visitors.",
        "# TYPE molehill_bytes_total counter",
        f'molehill_bytes_total{{direction="in"}} {relay.bytes_in + live_in}',
        f'molehill_bytes_total{{direction="out"}} {relay.bytes_out + live_out}',
        "# HELP molehill_requests_total Requests relayed.",
        "# TYPE molehill_requests_total counter",
        f"molehill_requests_total {relay.requests}",
        "# HELP molehill_responses_total Responses by status class.",
        "# TYPE molehill_responses_total counter",
    ]
    for klass in ("1xx", "2xx", "3xx", "4xx", "5xx"):
        lines.append(
            f'molehill_responses_total{{class="{klass}"}} {relay.responses_by_class.get(klass, 0)}'
        )
    lines += [
        "# HELP molehill_error_pages_total Error pages the relay answered itself.",
        "# TYPE molehill_error_pages_total counter",
        f"molehill_error_pages_total {relay.errors}",
        "# HELP molehill_request_duration_seconds Request head in to response head out.",
        "# TYPE molehill_request_duration_seconds histogram",
        *relay.durations.lines("molehill_request_duration_seconds"),
        *_tcp_lines(relay, tcp_in, tcp_out),
    ]
    if relay.node is not None:
        lines += _cluster_lines(relay)
        # Every series of a node carries node="ID": one dashboard for the whole cluster.
        node = relay.node.cluster.node_id
        lines = [line if line.startswith("#") else _with_node(line, node) for line in lines]
    return "\n".join(lines) + "\n"


def _with_node(sample: str, node: str) -> str:
    """``name{labels} value`` with node="ID" added (node ids are DNS labels: no quoting)."""
    name, _, rest = sample.partition(" ")
    if name.endswith("}"):
        return f'{name[:-1]},node="{node}"}} {rest}'
    return f'{name}{{node="{node}"}} {rest}'


def _cluster_lines(relay: Relay) -> list[str]:
    node = relay.node
    assert node is not None
    links = node.links
    peers = sorted(set(links.urls) | set(node.forwarded) | set(node.received))
    lines = [
        "# HELP molehill_cluster_links Node-to-node links up (out: dialled by this node).",
        "# TYPE molehill_cluster_links gauge",
        f'molehill_cluster_links{{direction="out"}} {sum(1 for n in links.urls if links.get(n))}',
        f'molehill_cluster_links{{direction="in"}} {len(relay.node_peers)}',
        "# HELP molehill_cluster_redis_reachable 1 while the cluster's Redis answers.",
        "# TYPE molehill_cluster_redis_reachable gauge",
        f"molehill_cluster_redis_reachable {int(node.registry.reachable)}",
        "# HELP molehill_cluster_streams_forwarded_total Visitor streams sent to the node "
        "holding their tunnel.",
        "# TYPE molehill_cluster_streams_forwarded_total counter",
    ]
    for peer in peers:
        count = node.forwarded.get(peer, 0)
        lines.append(f'molehill_cluster_streams_forwarded_total{{peer="{peer}"}} {count}')
    lines += [
        "# HELP molehill_cluster_streams_received_total Visitor streams other nodes sent here.",
        "# TYPE molehill_cluster_streams_received_total counter",
    ]
    for peer in peers:
        count = node.received.get(peer, 0)
        lines.append(f'molehill_cluster_streams_received_total{{peer="{peer}"}} {count}')
    return lines


def _tcp_lines(relay: Relay, live_in: int, live_out: int) -> list[str]:
    tcp = relay.tcp
    tunnels = sum(1 for s in relay.tunnels.values() if s.protocol == "tcp")
    lines = [
        "# HELP molehill_tcp_tunnels TCP tunnels online.",
        "# TYPE molehill_tcp_tunnels gauge",
        f"molehill_tcp_tunnels {tunnels}",
        "# HELP molehill_tcp_connections Open connections to TCP tunnels' ports.",
        "# TYPE molehill_tcp_connections gauge",
        f"molehill_tcp_connections {len(tcp.connections)}",
        "# HELP molehill_tcp_connections_total Connections let through to TCP tunnels.",
        "# TYPE molehill_tcp_connections_total counter",
        f"molehill_tcp_connections_total {tcp.accepted}",
        "# HELP molehill_tcp_bytes_total Bytes carried through TCP tunnels.",
        "# TYPE molehill_tcp_bytes_total counter",
        f'molehill_tcp_bytes_total{{direction="in"}} {tcp.bytes_in + live_in}',
        f'molehill_tcp_bytes_total{{direction="out"}} {tcp.bytes_out + live_out}',
        "# HELP molehill_tcp_refused_total TCP connections turned away, by the rule that did.",
        "# TYPE molehill_tcp_refused_total counter",
    ]
    reasons = [*TCP_REFUSALS, *sorted(set(tcp.refused) - set(TCP_REFUSALS))]
    for reason in reasons:
        count = tcp.refused.get(reason, 0)
        lines.append(f'molehill_tcp_refused_total{{reason="{reason}"}} {count}')
    return lines
