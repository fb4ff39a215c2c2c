"""`molehill connections list`: a running process's TCP connections, open and recently closed."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from relay.terminal_text import visible
from tui.api_probe import ApiNotFound, api_url, find_connections
from tui.format import human_size


def _api(text: str) -> tuple[str, int]:
    try:
        return api_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "connections",
        help="list a running TCP tunnel's connections (open and recent)",
        description=(
            "Ask the local API of the molehill process that runs your TCP tunnels (molehill "
            "tcp, or molehill start with a TCP profile) for their connections."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list",
        help="open connections, then the latest closed ones, newest first",
        description=(
            "Open connections (client, opened, duration so far, bytes each way), then the "
            "latest closed ones with how they closed; each TCP tunnel's live throughput."
        ),
    )
    listing.add_argument("--tunnel", metavar="NAME", help="only this tunnel's connections")
    listing.add_argument("--json", action="store_true", help="print the API's JSON answer")
    listing.add_argument(
        "--api",
        type=_api,
        metavar="URL",
        help="the local API to ask, e.g. http://127.0.0.1:4041 (default: the molehill API on "
        "127.0.0.1:4040-4050)",
    )
    listing.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        found = find_connections(args.api, args.tunnel)
    except ApiNotFound as exc:
        print(f"molehill: {exc}", file=sys.stderr)
        return 1
    tunnels = [t for _, data in found for t in data["tunnels"]]
    rows = [r for _, data in found for r in data["connections"]]
    if args.tunnel:
        tunnels = [t for t in tunnels if t["name"] == args.tunnel]
        rows = [r for r in rows if r["tunnel_name"] == args.tunnel]
        if not tunnels:
            names = ", ".join(t["name"] for _, d in found for t in d["tunnels"]) or "none"
            print(
                f"molehill: no TCP tunnel named {args.tunnel!r} is running (TCP tunnels: {names})",
                file=sys.stderr,
            )
            return 1
    if args.json:
        print(json.dumps({"connections": rows, "tunnels": tunnels}, indent=2))
        return 0
    # Any program on 4040..4050 can answer in molehill's shape: its text is shown, not obeyed.
    print(visible(render(tunnels, rows), lines=True), end="")
    return 0


def render(tunnels: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    """The listing as text: one line per tunnel, then a table of its connections."""
    if not tunnels:
        return "no TCP tunnels in the running molehill process(es)\n"
    lines = []
    for t in tunnels:
        rate = t["throughput"]
        lines.append(
            f"{t['name']}  {t['public_url']}  {t['open']} open, {t['total']} total  "
            f"{_rate(rate.get('in', 0))} in, {_rate(rate.get('out', 0))} out"
        )
    lines.append("")
    if not rows:
        lines.append("no connections yet")
        return "\n".join(lines) + "\n"
    header = (
        f"{'TUNNEL':<16}{'CLIENT':<24}{'OPENED':<21}{'DURATION':>10}{'IN':>10}{'OUT':>10}  STATE"
    )
    lines.append(header)
    for r in rows:
        state = "open" if r["state"] == "open" else f"closed: {r['closed']}"
        opened = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["time"]))
        lines.append(
            f"{r['tunnel_name'][:15]:<16}{r['client'][:23]:<24}{opened:<21}"
            f"{r['duration_ms'] / 1000:>9.1f}s{human_size(r['bytes_in']):>10}"
            f"{human_size(r['bytes_out']):>10}  {state}"
        )
    return "\n".join(lines) + "\n"


def _rate(value: float) -> str:
    return f"{human_size(int(value))}/s"
