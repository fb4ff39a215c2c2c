"""`molehill http PORT`: expose one local port through a relay, headless, like `ngrok http`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from relay.agent import DEFAULT_RELAY, Agent, AgentSettings, Refused
from relay.names import label_problem
from relay.runtime import run_until_signal
from tui.report import Reporter


def port_number(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "http",
        help="expose a local port at a public URL",
        description="Expose http://HOST:PORT through a molehill relay and log every request.",
    )
    parser.add_argument("port", type=port_number, help="the local app's port")
    parser.add_argument("--host", default="127.0.0.1", help="the local app's host (127.0.0.1)")
    parser.add_argument(
        "--subdomain",
        default="",
        metavar="NAME",
        help="public name to ask for (default: a random readable one)",
    )
    parser.add_argument(
        "--relay",
        default=None,
        metavar="URL",
        help=f"relay's agent endpoint (default $MOLEHILL_RELAY or {DEFAULT_RELAY})",
    )
    parser.add_argument("--token", default=None, help="agent token (default $MOLEHILL_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per event")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.subdomain and (problem := label_problem(args.subdomain)):
        print(f"molehill: --subdomain: {problem}", file=sys.stderr)
        return 2
    relay = args.relay or os.environ.get("MOLEHILL_RELAY") or DEFAULT_RELAY
    if not relay.startswith(("ws://", "wss://")):
        print(f"molehill: --relay must start with ws:// or wss://, got {relay!r}", file=sys.stderr)
        return 2
    settings = AgentSettings(
        local_port=args.port,
        local_host=args.host,
        relay=relay,
        name=args.subdomain,
        token=args.token or os.environ.get("MOLEHILL_TOKEN", ""),
    )
    return run_until_signal(lambda stop: run_agents([(None, settings)], args.json, stop))


async def run_agents(
    tunnels: list[tuple[str | None, AgentSettings]], as_json: bool, stop: asyncio.Event
) -> int:
    """Run agents until stop is set; exit code 1 if the relay refuses any of them."""
    agents = [Agent(settings, Reporter(as_json, tag)) for tag, settings in tunnels]
    tasks = [asyncio.create_task(agent.run()) for agent in agents]
    stopper = asyncio.create_task(stop.wait())
    code = 0
    pending = set(tasks)
    while pending:
        done, _ = await asyncio.wait(pending | {stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            break
        for task in done & pending:
            pending.discard(task)
            if isinstance(task.exception(), Refused):
                code = 1
        if code:
            break
    for agent in agents:
        agent.stop()
    await asyncio.wait(tasks, timeout=3)
    stopper.cancel()
    return code
