"""`molehill http TARGET`: expose one local app through a relay, headless, like `ngrok http`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import sys
from typing import Any

from inspector.resign import ResignError
from relay.agent import DEFAULT_RELAY, AgentSettings
from relay.agent.addresses import MAX_ADDRESSES
from relay.http.names import label_problem
from relay.http.targets import TargetError, parse_target
from relay.transport.runtime import run_until_signal
from tui.captures import add_capture_option, open_capture_writer
from tui.headless import output, run_agents
from tui.local_api import add_api_options, api_options, bad_secret

DEFAULT_GIVE_UP = 20.0  # seconds a first connection keeps trying


def target_argument(text: str) -> str:
    """Check the target's form for argparse; a bare PORT waits for --host (see run)."""
    try:
        parse_target(text)
    except TargetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "http",
        help="expose a local web app at a public URL",
        description=(
            "Expose a local web app through a molehill relay and show every request. TARGET is "
            "PORT, HOST:PORT, http://HOST:PORT or https://HOST:PORT (https: the agent speaks "
            "TLS to the app). On a terminal a status block is redrawn in place; into a pipe or "
            "a file, one line per event; with --json, one JSON object per event."
        ),
    )
    parser.add_argument(
        "target",
        type=target_argument,
        metavar="TARGET",
        help="the local app: 3000, localhost:3000, http://localhost:3000 or https://localhost:8443",
    )
    parser.add_argument(
        "--host",
        default=None,
        help="the local app's host when TARGET is a bare PORT (default 127.0.0.1)",
    )
    parser.add_argument(
        "--local-insecure",
        action="store_true",
        help="with an https:// TARGET, accept any certificate (self-signed dev servers)",
    )
    parser.add_argument(
        "--subdomain",
        default="",
        metavar="NAME",
        help="public name to ask for (default: a random readable one)",
    )
    parser.add_argument(
        "--relay",
        action="append",
        default=None,
        metavar="URL",
        help=f"relay's agent endpoint (default $MOLEHILL_RELAY or {DEFAULT_RELAY}); give it "
        "again for a link through each of a cluster's nodes, one name through all of them; a "
        f"host name with several addresses gives a link through each (at most {MAX_ADDRESSES})",
    )
    parser.add_argument("--token", default=None, help="agent token (default $MOLEHILL_TOKEN)")
    add_connect_timeout_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object per event")
    add_capture_option(parser)
    add_api_options(parser)
    add_access_options(parser)
    parser.add_argument(
        "--takeover",
        action="store_true",
        help="replace a live tunnel of the same name opened with the same token",
    )
    parser.add_argument("--ca", metavar="FILE", help="trust this CA file for a wss:// relay")
    parser.set_defaults(run=run)


def add_connect_timeout_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connect-timeout",
        type=seconds,
        default=DEFAULT_GIVE_UP,
        metavar="SECONDS",
        help=f"give up (exit 1) if the first connection to the relay fails for this long "
        f"(default {DEFAULT_GIVE_UP:g}; 0: keep trying); once online, reconnects never give up",
    )


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86400:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0-86400)")
    return value


def give_up_settings(timeout: float) -> dict[str, Any]:
    """AgentSettings fields for --connect-timeout: one attempt never outlasts the whole."""
    if not timeout:
        return {"give_up_after": None}
    return {"give_up_after": timeout, "connect_timeout": min(10.0, timeout)}


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


def relay_and_problem(args: argparse.Namespace, name: str, flag: str) -> tuple[str, str | None]:
    """The relay URL an agent command uses, and what is wrong with its common options (the
    tunnel name under ``flag``, the relay URL, the access rules), or None."""
    given = args.relay if isinstance(args.relay, list) else [args.relay] if args.relay else []
    relay = given[0] if given else os.environ.get("MOLEHILL_RELAY") or DEFAULT_RELAY
    if name and (problem := label_problem(name)):
        return relay, f"{flag}: {problem}"
    for url in given or [relay]:
        if not url.startswith(("ws://", "wss://")):
            return relay, f"--relay must start with ws:// or wss://, got {url!r}"
    return relay, access_problem(args)


def run(args: argparse.Namespace) -> int:
    relay, problem = relay_and_problem(args, args.subdomain, "--subdomain")
    if problem:
        print(f"molehill: {problem}", file=sys.stderr)
        return 2
    try:
        target = parse_target(args.target, args.host or "127.0.0.1")
    except TargetError as exc:
        print(f"molehill: {exc}", file=sys.stderr)
        return 2
    if args.host is not None and args.target != str(target.port):
        print(
            f"molehill: --host goes with a bare PORT; {args.target!r} already names the host",
            file=sys.stderr,
        )
        return 2
    if args.local_insecure and not target.tls:
        print(
            f"molehill: --local-insecure is for an https:// target, e.g. https://{target.address}",
            file=sys.stderr,
        )
        return 2
    try:
        api = api_options(args)
    except ResignError as exc:
        return bad_secret(exc)
    settings = AgentSettings(
        local_port=target.port,
        local_host=target.host,
        local_tls=target.tls,
        local_insecure=args.local_insecure,
        relay=relay,
        more_relays=tuple(args.relay[1:]) if args.relay else (),
        name=args.subdomain,
        token=args.token or os.environ.get("MOLEHILL_TOKEN", ""),
        basic_auth=args.basic_auth,
        allow=tuple(args.allow),
        deny=tuple(args.deny),
        takeover=args.takeover,
        ca_file=args.ca,
        **give_up_settings(args.connect_timeout),
    )

    async def main(stop: asyncio.Event) -> int:
        with contextlib.closing(output(args.json, stop)) as out:
            captures = open_capture_writer(not args.no_capture)
            return await run_agents([(None, settings)], args.json, stop, out, captures, api)

    return run_until_signal(main)
