"""`molehill http PORT`: expose one local port through a relay, headless, like `ngrok http`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import sys
from collections.abc import Callable

from relay.agent import DEFAULT_RELAY, Agent, AgentSettings, Refused
from relay.agent.resume_store import ResumeStore
from relay.events import AgentEvent, Reconnected, RequestRecord, TunnelOpen
from relay.http.names import label_problem
from relay.transport.runtime import run_until_signal
from tui.output import LineWriter, stdout_writer
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
    add_access_options(parser)
    parser.add_argument(
        "--takeover",
        action="store_true",
        help="replace a live tunnel of the same name opened with the same token",
    )
    parser.add_argument("--ca", metavar="FILE", help="trust this CA file for a wss:// relay")
    parser.set_defaults(run=run)


def add_access_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--basic-auth",
        metavar="USER:PASSWORD",
        help="visitors must sign in with these (checked by the relay)",
    )
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="CIDR",
        help="let in only visitors from this network (repeatable)",
    )
    parser.add_argument(
        "--deny",
        action="append",
        default=[],
        metavar="CIDR",
        help="turn away visitors from this network (repeatable)",
    )


def access_problem(args: argparse.Namespace) -> str | None:
    """Check --basic-auth, --allow and --deny before going to the relay."""
    if args.basic_auth is not None and (":" not in args.basic_auth or args.basic_auth[0] == ":"):
        return "--basic-auth must be USER:PASSWORD"
    for flag in ("allow", "deny"):
        for cidr in getattr(args, flag):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                return f"--{flag}: {cidr!r} is not a network like 203.0.113.0/24"
    return None


def run(args: argparse.Namespace) -> int:
    if args.subdomain and (problem := label_problem(args.subdomain)):
        print(f"molehill: --subdomain: {problem}", file=sys.stderr)
        return 2
    relay = args.relay or os.environ.get("MOLEHILL_RELAY") or DEFAULT_RELAY
    if not relay.startswith(("ws://", "wss://")):
        print(f"molehill: --relay must start with ws:// or wss://, got {relay!r}", file=sys.stderr)
        return 2
    if problem := access_problem(args):
        print(f"molehill: {problem}", file=sys.stderr)
        return 2
    settings = AgentSettings(
        local_port=args.port,
        local_host=args.host,
        relay=relay,
        name=args.subdomain,
        token=args.token or os.environ.get("MOLEHILL_TOKEN", ""),
        basic_auth=args.basic_auth,
        allow=tuple(args.allow),
        deny=tuple(args.deny),
        takeover=args.takeover,
        ca_file=args.ca,
    )

    async def main(stop: asyncio.Event) -> int:
        with contextlib.closing(output(args.json, stop)) as out:
            return await run_agents([(None, settings)], args.json, stop, out)

    return run_until_signal(main)


def output(as_json: bool, stop: asyncio.Event) -> LineWriter:
    """The agents' stdout; when its reader goes away (`| head`), they stop, as `yes | head` does.

    Exit code 0 with a line on stderr: the user chose to read no further, nothing failed.
    """

    def closed(exc: OSError) -> None:
        why = "closed" if isinstance(exc, BrokenPipeError) else f"unwritable ({exc.strerror})"
        print(f"molehill: stdout was {why}; shutting down", file=sys.stderr, flush=True)
        stop.set()

    return stdout_writer(as_json, closed)


async def run_agents(
    tunnels: list[tuple[str | None, AgentSettings]],
    as_json: bool,
    stop: asyncio.Event,
    out: LineWriter,
) -> int:
    """Run agents until stop is set, their events to ``out``; exit code 1 if the relay refuses
    any of them."""
    store = ResumeStore()
    agents: list[Agent] = []
    reporters: list[Reporter] = []
    for tag, settings in tunnels:
        settings.resume = settings.resume or store.get(settings.relay, settings.name)
        reporters.append(Reporter(as_json, tag, out))
        agents.append(Agent(settings, _remembering(reporters[-1], store, len(agents), agents)))
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
    for reporter in reporters:
        reporter.flush()
    return code


def _remembering(
    report: Reporter, store: ResumeStore, index: int, agents: list[Agent]
) -> Callable[[AgentEvent], None]:
    """Report events; once a tunnel is online, keep its resume token for the next run."""

    def on_event(event: AgentEvent) -> None:
        if type(event) is not RequestRecord and isinstance(event, TunnelOpen | Reconnected):
            agent = agents[index]
            store.put(agent.settings.relay, agent.name, agent.resume)
        report(event)

    return on_event
