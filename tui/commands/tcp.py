"""`molehill tcp [HOST:]PORT`: expose a local TCP service (PostgreSQL, SSH...) on a relay port."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys

from relay.agent import DEFAULT_RELAY, AgentSettings
from relay.http.targets import LocalTarget, TargetError, parse_target
from relay.transport.runtime import run_until_signal
from tui.commands.http import (
    add_connect_timeout_option,
    give_up_settings,
    output,
    relay_and_problem,
    run_agents,
)
from tui.local_api import add_api_options, api_options


def target(text: str) -> LocalTarget:
    """``PORT`` or ``HOST:PORT`` (IPv6 as ``[::1]:PORT``) of the local service: no scheme."""
    accepted = "use PORT or HOST:PORT, e.g. 5432 or db.internal:5432"
    if "://" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP target (no scheme): {accepted}")
    try:
        return parse_target(text)
    except TargetError as exc:  # its advice names http:// forms, which TCP does not take
        detail = re.split(r"[:;] use PORT, ", str(exc))[0]
        detail = detail.replace("is not a target", "is not a TCP target")
        raise argparse.ArgumentTypeError(f"{detail}; {accepted}") from None


def port_number(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tcp",
        help="expose a local TCP port (a database, SSH) at tcp://RELAY:PORT",
        description=(
            "Expose a local TCP service through a molehill relay: the relay gives it a public "
            "port from its TCP range (the relay must run with --tcp-ports) and every "
            "connection is piped as it is. One line (or JSON object) per closed connection."
        ),
    )
    parser.add_argument(
        "target", type=target, metavar="[HOST:]PORT", help="the local service, e.g. 5432"
    )
    parser.add_argument(
        "--remote-port",
        type=port_number,
        metavar="N",
        help="public port to ask for (default: any free one in the relay's range)",
    )
    parser.add_argument(
        "--name",
        default="",
        help="tunnel name on the relay (default: a random one); reconnects keep name and port",
    )
    parser.add_argument(
        "--relay",
        default=None,
        metavar="URL",
        help=f"relay's agent endpoint (default $MOLEHILL_RELAY or {DEFAULT_RELAY})",
    )
    parser.add_argument("--token", default=None, help="agent token (default $MOLEHILL_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per event")
    add_connect_timeout_option(parser)
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="CIDR",
        help="let in only clients from this network (repeatable)",
    )
    parser.add_argument(
        "--deny",
        action="append",
        default=[],
        metavar="CIDR",
        help="turn away clients from this network (repeatable)",
    )
    parser.add_argument(
        "--takeover",
        action="store_true",
        help="replace a live tunnel of the same name opened with the same token",
    )
    parser.add_argument("--ca", metavar="FILE", help="trust this CA file for a wss:// relay")
    add_api_options(parser, secrets=False)  # `molehill connections list` reads it
    parser.set_defaults(run=run, basic_auth=None)


def run(args: argparse.Namespace) -> int:
    relay, problem = relay_and_problem(args, args.name, "--name")
    if problem:
        print(f"molehill: {problem}", file=sys.stderr)
        return 2
    api = api_options(args)
    settings = AgentSettings(
        local_port=args.target.port,
        local_host=args.target.host,
        relay=relay,
        name=args.name,
        token=args.token or os.environ.get("MOLEHILL_TOKEN", ""),
        allow=tuple(args.allow),
        deny=tuple(args.deny),
        takeover=args.takeover,
        ca_file=args.ca,
        protocol="tcp",
        remote_port=args.remote_port,
        **give_up_settings(args.connect_timeout),
    )

    async def main(stop: asyncio.Event) -> int:
        with contextlib.closing(output(args.json, stop)) as out:
            return await run_agents([(None, settings)], args.json, stop, out, api=api)

    return run_until_signal(main)
