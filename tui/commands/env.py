"""`molehill env NAME`: a profile's [env] with the other profiles' public URLs filled in."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import urllib.error
import urllib.request

from profiles.errors import ProfilesError
from profiles.model import Profile, ProfilesFile
from profiles.paths import resolve_profiles_path
from profiles.refs import depends_on
from profiles.store import load
from runner.wiring import missing, resolve
from tui.commands.profiles import add_profiles_option
from tui.local_api import DEFAULT_PORT, LAST_PORT

EMBEDDED_PUBLIC = "http://{name}.localhost:8080"  # the embedded relay's default public URLs
API_TIMEOUT = 0.5


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "env",
        help="print a profile's environment with the other profiles' URLs filled in",
        description=(
            "Print the variables of a profile's [env] as shell export lines (eval them, or "
            "--json), with {PROFILE.url}, {PROFILE.host} and {PROFILE.port} replaced: from a "
            f"running molehill's local API (127.0.0.1:{DEFAULT_PORT}-{LAST_PORT}), else "
            "computed for the embedded relay; a '#' line says where each URL came from."
        ),
    )
    parser.add_argument("name", metavar="NAME", help="the profile")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    add_profiles_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        file = load(resolve_profiles_path(getattr(args, "profiles_path", None))).file
        profile = file.get(args.name)
    except ProfilesError as exc:
        print(f"molehill: {exc}", file=sys.stderr)
        return exc.exit_code
    urls, sources = public_urls(file, depends_on(profile.env))
    unknown = missing(profile.env, urls)
    for name in unknown:
        sources[name] = (
            f"unknown: no running molehill here has a tunnel for '{name}', and the relay "
            f"({file.relay.first_url or 'embedded'}) decides its URL; start it (`molehill start "
            f"{name}`), then run this again"
        )
    known = {k: v for k, v in profile.env.items() if not missing({k: v}, urls)}
    values = resolve(known, urls)
    if args.json:
        print(json.dumps({"profile": profile.name, "env": values, "urls": sources}, indent=2))
    else:
        for name, where in sources.items():
            print(f"# {name}.url: {where}")
        for key in profile.env:
            if key in values:
                print(f"export {key}={shlex.quote(values[key])}")
            else:
                needs = ", ".join(missing({key: profile.env[key]}, urls))
                print(f"# {key} left out: it needs the URL of {needs}")
    return 1 if unknown else 0


def public_urls(file: ProfilesFile, names: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The public URL of each profile in `names` and where it came from."""
    urls: dict[str, str] = {}
    sources: dict[str, str] = {}
    running = running_tunnels()
    for name in names:
        if name in running:
            url, api = running[name]
            urls[name] = url
            sources[name] = f"{url} (from the running molehill at {api})"
        elif file.relay.url is None and file.get(name).protocol == "http":
            profile: Profile = file.get(name)
            urls[name] = EMBEDDED_PUBLIC.format(name=profile.public_name)
            sources[name] = (
                f"{urls[name]} (computed: no molehill is running it; the embedded relay's "
                "default address, if 127.0.0.1:8080 is free when it starts)"
            )
    return urls, sources


def running_tunnels() -> dict[str, tuple[str, str]]:
    """{tunnel name: (public URL, API address)} from every local API that answers (a dashboard
    and a `molehill start` may both run); the lowest port wins a name both have."""
    found: dict[str, tuple[str, str]] = {}
    for port in range(DEFAULT_PORT, LAST_PORT + 1):
        api = f"http://127.0.0.1:{port}"
        try:
            with urllib.request.urlopen(f"{api}/api/tunnels", timeout=API_TIMEOUT) as answer:
                data = json.load(answer)
        except (OSError, ValueError, urllib.error.URLError):
            continue
        tunnels = data.get("tunnels") if isinstance(data, dict) else None
        for t in tunnels if isinstance(tunnels, list) else []:
            if isinstance(t, dict) and isinstance(t.get("name"), str) and t.get("public_url"):
                found.setdefault(t["name"], (str(t["public_url"]), api))
    return found
