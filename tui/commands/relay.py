"""`molehill relay`: run the relay server (public HTTP listener + agents' websocket endpoint)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from relay.names import label_problem
from relay.runtime import run_until_signal
from relay.server import Relay, RelaySettings


def host_port(text: str) -> tuple[str, int]:
    """Parse HOST:PORT for argparse (IPv6 as [::1]:PORT)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "relay",
        help="run the relay server that gives tunnels their public URLs",
        description="Run a molehill relay: visitors connect to --http, agents to --agents.",
    )
    parser.add_argument("--domain", default="localhost", help="tunnels live at NAME.DOMAIN")
    parser.add_argument(
        "--http",
        type=host_port,
        default=("127.0.0.1", 8080),
        metavar="HOST:PORT",
        help="public HTTP listener (default 127.0.0.1:8080)",
    )
    parser.add_argument(
        "--agents",
        type=host_port,
        default=("127.0.0.1", 7000),
        metavar="HOST:PORT",
        help="agents' websocket listener (default 127.0.0.1:7000)",
    )
    parser.add_argument(
        "--public-port",
        type=int,
        default=None,
        help="port shown in public URLs when a proxy listens for the relay",
    )
    parser.add_argument(
        "--lease",
        type=float,
        default=120.0,
        help="seconds a disconnected agent's name is held for it (default 120)",
    )
    parser.add_argument("--ping-interval", type=float, default=5.0)
    parser.add_argument(
        "--ping-timeout",
        type=float,
        default=15.0,
        help="declare a silent agent dead after this many seconds",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    domain = args.domain.lower().strip(".")
    bad = [part for part in domain.split(".") if label_problem(part)]
    if bad:
        print(f"molehill: --domain {args.domain!r} is not a valid domain name", file=sys.stderr)
        return 2
    settings = RelaySettings(
        domain=domain,
        http_host=args.http[0],
        http_port=args.http[1],
        agents_host=args.agents[0],
        agents_port=args.agents[1],
        public_port=args.public_port,
        lease=args.lease,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    return run_until_signal(lambda stop: serve(settings, stop))


async def serve(settings: RelaySettings, stop: asyncio.Event) -> int:
    relay = Relay(settings)
    try:
        await relay.start()
    except OSError as exc:
        print(
            f"molehill: cannot listen: {exc.strerror or exc}. Is another relay running? "
            "Choose other ports with --http and --agents.",
            file=sys.stderr,
        )
        return 1
    print(f"molehill relay: tunnels at {relay.public_url('NAME')}", flush=True)
    print(f"  public HTTP  http://{settings.http_host}:{relay.http_port}", flush=True)
    print(
        f"  agents       {relay.agents_url}  (molehill http PORT --relay {relay.agents_url})",
        flush=True,
    )
    await stop.wait()
    print("molehill relay: shutting down", flush=True)
    await relay.stop()
    return 0
