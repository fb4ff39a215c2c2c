"""`molehill start NAME... | --all`: run profiles' tunnels headless, in one process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys

from inspector.resign import ResignError
from profiles.errors import ProfilesError
from profiles.model import Profile, ProfilesFile
from profiles.paths import resolve_profiles_path
from profiles.refs import depends_on
from profiles.store import load
from relay.agent import AgentSettings
from relay.host import start_embedded_relay
from relay.server import Relay, RelaySettings
from relay.server.tcp_ports import PortRange
from relay.transport.runtime import run_until_signal
from runner.apps import AppRunner
from tui.app_lines import reporter
from tui.captures import add_capture_option, open_capture_writer
from tui.commands.http import add_connect_timeout_option, give_up_settings
from tui.commands.profiles import add_profiles_option
from tui.commands.relay import host_port
from tui.headless import output, run_agents
from tui.local_api import add_api_options, api_options, bad_secret
from tui.output import LineWriter

# The embedded relay's TCP ports when a tcp profile starts: below Linux's ephemeral range.
EMBEDDED_TCP_PORTS = PortRange(20000, 20999)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "start",
        help="run tunnels for named profiles (or all of them), headless",
        description=(
            "Start the tunnels of the named profiles in one process, with one line (or JSON "
            "object) per request, tagged with the profile name. Without a [relay] url in the "
            "profiles file, an embedded relay on loopback serves them."
        ),
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="profiles to start")
    parser.add_argument("--all", action="store_true", help="start every profile")
    parser.add_argument("--json", action="store_true", help="print one JSON object per event")
    add_capture_option(parser)
    add_api_options(parser)
    parser.add_argument(
        "--http",
        type=host_port,
        default=("127.0.0.1", 8080),
        metavar="HOST:PORT",
        help="the embedded relay's public listener, when no relay is configured "
        "(default 127.0.0.1:8080, or a free port if that is taken)",
    )
    add_connect_timeout_option(parser)
    add_profiles_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.names and not args.all:
        print(
            "molehill: name the profiles to start, or use --all (see `molehill profiles list`)",
            file=sys.stderr,
        )
        return 2
    try:
        loaded = load(resolve_profiles_path(getattr(args, "profiles_path", None)))
        chosen = (
            list(loaded.file.profiles.values())
            if args.all
            else [loaded.file.get(name) for name in args.names]
        )
        chosen = with_references(loaded.file, chosen)
    except ProfilesError as exc:
        print(f"molehill: {exc}", file=sys.stderr)
        return exc.exit_code
    if not chosen:
        print(
            f"molehill: {loaded.path} has no profiles yet; add one with "
            "`molehill profiles add NAME --port PORT`",
            file=sys.stderr,
        )
        return 2
    relay = loaded.file.relay
    try:
        api = api_options(args)
    except ResignError as exc:
        return bad_secret(exc)
    secrets = {p.name: dict(p.webhook_secrets) for p in chosen}

    async def main(stop: asyncio.Event) -> int:
        with contextlib.closing(output(args.json, stop)) as out:
            return await start(stop, out)

    async def start(stop: asyncio.Event, out: LineWriter) -> int:
        embedded: Relay | None = None
        url = relay.first_url or ""
        if not url:
            try:
                settings = RelaySettings(
                    http_host=args.http[0], http_port=args.http[1], agents_port=0
                )
                if any(p.protocol == "tcp" for p in chosen):  # loopback: any free port will do
                    settings.tcp_ports = EMBEDDED_TCP_PORTS
                embedded = await start_embedded_relay(settings)
            except OSError as exc:
                print(f"molehill: cannot start the embedded relay: {exc}", file=sys.stderr)
                return 1
            url = embedded.agents_url
            where = embedded.public_url("NAME")
            if args.json:
                out.write(json.dumps({"event": "relay", "embedded": True, "url": where}) + "\n")
            else:
                out.write(f"embedded relay: tunnels at {where}\n")
        token = relay.token or os.environ.get("MOLEHILL_TOKEN", "")
        tunnels: list[tuple[str | None, AgentSettings]] = [
            (p.name, _settings(p, url, token, args.connect_timeout)) for p in chosen
        ]
        for profile_settings in (s for _, s in tunnels if s.protocol != "tcp"):
            profile_settings.more_relays = relay.urls[1:]  # a link through each (TCP: one)
        holder: list[AppRunner] = []
        apps = AppRunner(chosen, loaded.path.parent, reporter(out, args.json, holder))
        holder.append(apps)
        try:
            captures = open_capture_writer(not args.no_capture)
            return await run_agents(tunnels, args.json, stop, out, captures, api, secrets, apps)
        finally:
            if embedded is not None:
                await embedded.stop()

    return run_until_signal(main)


def with_references(file: ProfilesFile, chosen: list[Profile]) -> list[Profile]:
    """`chosen` and the profiles their [env] refers to (those first): their URLs are needed."""
    done: dict[str, Profile] = {}

    def add(profile: Profile) -> None:
        if profile.name in done:
            return
        for other in depends_on(profile.env):
            add(file.get(other))
        done[profile.name] = profile

    for profile in chosen:
        add(profile)
    return list(done.values())


def _settings(profile: Profile, relay_url: str, token: str, give_up: float) -> AgentSettings:
    return AgentSettings(
        **give_up_settings(give_up),
        local_port=profile.port,
        local_host=profile.host,
        local_tls=profile.tls,
        local_insecure=profile.local_insecure,
        relay=relay_url,
        name=profile.public_name,
        token=token,
        basic_auth=profile.basic_auth,
        allow=profile.allow,
        deny=profile.deny,
        protocol=profile.protocol,
        remote_port=profile.remote_port,
    )
