"""`molehill relay cluster status`: a cluster's nodes and tunnels, read from its Redis."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from relay.cluster.status import ClusterStatus, read_status
from relay.server.config import ConfigError, load_config


def add_parser(relay_sub: argparse._SubParsersAction) -> None:
    cluster = relay_sub.add_parser("cluster", help="look at a relay cluster")
    cluster_sub = cluster.add_subparsers(dest="cluster_command", metavar="COMMAND", required=True)
    status = cluster_sub.add_parser(
        "status",
        help="list the nodes (alive or not, last seen) and the tunnel names each holds",
        description="Read the cluster's Redis: every node that renewed its presence in the last "
        "day, whether it is alive, when it was last seen, and the names it holds (live: its "
        "agent is connected; held: kept for an agent that may come back).",
    )
    status.add_argument(
        "--cluster",
        dest="status_redis",
        metavar="redis://HOST:PORT/DB",
        help="the cluster's Redis (default: $MOLEHILL_CLUSTER, or [cluster] redis of --config)",
    )
    status.add_argument(
        "--config", dest="status_config", metavar="FILE", help="a node's config file"
    )
    status.add_argument("--json", action="store_true", help="one JSON object on standard output")
    status.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    url = args.status_redis or os.environ.get("MOLEHILL_CLUSTER", "")
    if not url and args.status_config:
        try:
            settings = load_config(args.status_config)
        except ConfigError as exc:
            print(f"molehill: {exc}", file=sys.stderr)
            return 2
        url = settings.cluster.redis_url if settings.cluster else ""
    if not url:
        print(
            "molehill: which cluster? give --cluster redis://HOST:PORT/DB (or --config FILE "
            "of a node, or set MOLEHILL_CLUSTER)",
            file=sys.stderr,
        )
        return 2
    try:
        status = asyncio.run(read_status(url))
    except ConnectionError as exc:
        print(f"molehill: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status.as_dict()))
    else:
        print(render(status))
    return 0


def render(status: ClusterStatus) -> str:
    """The status as a few lines a person reads: one per node, its tunnels indented."""
    alive = sum(node.state == "alive" for node in status.nodes)
    tunnels = sum(len(node.tunnels) for node in status.nodes)
    lines = [
        f"cluster {status.redis}: {len(status.nodes)} nodes ({alive} alive), {tunnels} tunnels"
    ]
    for node in status.nodes:
        seen = "never" if node.last_seen is None else f"{node.last_seen:.1f} s ago"
        lines.append(f"  {node.id:<16} {node.state:<8} {node.url or '-':<28} last seen {seen}")
        for tunnel in node.tunnels:
            label = f"  token {tunnel.label}" if tunnel.label else ""
            also = f" (also through {', '.join(tunnel.also)})" if tunnel.also else ""
            lines.append(f"      {tunnel.name:<24} {tunnel.state}{also}{label}")
    if not status.nodes:
        lines.append("  no node has registered in this Redis (is it the cluster's --cluster URL?)")
    return "\n".join(lines)
