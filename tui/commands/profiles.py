"""`molehill profiles ...`: see, add, change and remove tunnel profiles from the shell."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from profiles.errors import EXIT_BAD_INPUT, InvalidProfiles, ProfilesError
from profiles.model import DEFAULT_HOST, Profile, profile_table
from profiles.paths import resolve_profiles_path
from profiles.store import load, save


class _Clear:
    """Marks an option that clears a setting (--no-subdomain), as opposed to "not given" (None)."""

    def __repr__(self) -> str:
        return "CLEAR"


CLEAR: Any = _Clear()

# Profile fields the add/edit options set, and the option that sets each (for messages).
PROFILE_OPTIONS = {
    "port": "--port",
    "host": "--host",
    "subdomain": "--subdomain",
    "basic_auth": "--basic-auth",
    "allow": "--allow",
    "deny": "--deny",
    "host_header": "--host-header",
    "autostart": "--autostart",
}
RELAY_OPTIONS = {"url": "--url", "token": "--token"}


# -- parser --------------------------------------------------------------------------------------


def add_profiles_option(parser: argparse.ArgumentParser) -> None:
    """``--profiles PATH``, which every subcommand that reads the profiles file takes."""
    # SUPPRESS at every level: an unset option must not overwrite a --profiles given earlier on
    # the command line (argparse copies sub-parser defaults over the parent's values).
    parser.add_argument(
        "--profiles",
        dest="profiles_path",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="profiles file to use (default: $MOLEHILL_PROFILES, else the user config directory)",
    )


def _add_setting_options(parser: argparse.ArgumentParser, *, editing: bool) -> None:
    """The options of `add` and `edit`; `edit` also gets --no-... options to clear a setting."""

    def pair(option: str, dest: str, clear: str | None, **kwargs: Any) -> None:
        group = parser.add_mutually_exclusive_group() if editing else parser
        group.add_argument(option, dest=dest, **kwargs)
        if editing and clear:
            why = "turn off" if kwargs.get("const") is True else "remove the setting"
            group.add_argument(
                clear, dest=dest, action="store_const", const=CLEAR, help=f"{why} ({option})"
            )

    pair(
        "--port",
        "port",
        None,
        type=int,
        metavar="PORT",
        required=not editing,
        help="local port to expose (1-65535)",
    )
    pair("--host", "host", None, metavar="HOST", help=f"local host (default {DEFAULT_HOST})")
    pair(
        "--subdomain",
        "subdomain",
        "--no-subdomain",
        metavar="NAME",
        help="public name to ask for (default: the profile name)",
    )
    pair(
        "--basic-auth",
        "basic_auth",
        "--no-basic-auth",
        metavar="USER:PASSWORD",
        help="require these credentials from visitors",
    )
    pair(
        "--allow",
        "allow",
        "--no-allow",
        action="append",
        metavar="CIDR",
        help="only let in clients from this network (repeatable; edit replaces the list)",
    )
    pair(
        "--deny",
        "deny",
        "--no-deny",
        action="append",
        metavar="CIDR",
        help="turn away clients from this network (repeatable; edit replaces the list)",
    )
    pair(
        "--host-header",
        "host_header",
        "--no-host-header",
        metavar="HOST",
        help="rewrite the Host header to this before it reaches the app",
    )
    pair(
        "--autostart",
        "autostart",
        "--no-autostart",
        action="store_const",
        const=True,
        help="start this tunnel when the dashboard opens",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `profiles` and its sub-commands on the molehill command line."""
    parser = subparsers.add_parser(
        "profiles",
        help="list, show, add, edit and remove tunnel profiles",
        description="Manage tunnel profiles in the profiles file (see docs/profiles.md).",
        # "resolve": the dispatcher may add its own global --profiles option here too.
        conflict_handler="resolve",
    )
    add_profiles_option(parser)
    parser.set_defaults(run=run)  # the dispatcher (tui/cli.py) calls args.run(args)
    commands = parser.add_subparsers(dest="profiles_command", metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(
            name,
            help=help,
            description=help[0].upper() + help[1:] + ".",
            conflict_handler="resolve",
        )
        add_profiles_option(sub)
        return sub

    command("path", "print the path of the profiles file in use")
    command("list", "list the profiles (the default when no command is given)")
    show = command("show", "show every setting of one profile")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--show-secrets", action="store_true", help="print the basic-auth password")
    add = command("add", "add a profile")
    add.add_argument("name", metavar="NAME", help="profile name (lowercase a-z, 0-9, '-')")
    _add_setting_options(add, editing=False)
    edit = command("edit", "change settings of a profile (only the options given)")
    edit.add_argument("name", metavar="NAME")
    _add_setting_options(edit, editing=True)
    remove = command("remove", "remove a profile")
    remove.add_argument("name", metavar="NAME")
    relay = command("set-relay", "set the relay to connect to (no options: show it)")
    url = relay.add_mutually_exclusive_group()
    url.add_argument(
        "--url",
        action="append",
        metavar="URL",
        help="ws:// or wss:// URL of the relay; give it again for a link through each of a "
        "cluster's nodes (one name through all of them)",
    )
    url.add_argument(
        "--no-url", dest="url", action="store_const", const=CLEAR, help="use an embedded relay"
    )
    token = relay.add_mutually_exclusive_group()
    token.add_argument("--token", metavar="TOKEN", help="relay token ('-' reads it from stdin)")
    token.add_argument(
        "--no-token", dest="token", action="store_const", const=CLEAR, help="remove the token"
    )


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone `molehill` parser with only `profiles` (for `python -m` and tests)."""
    parser = argparse.ArgumentParser(prog="molehill")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_parser(subparsers)
    return parser


# -- running -------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Run the parsed `molehill profiles ...` command; return the process exit code."""
    handler = _HANDLERS[getattr(args, "profiles_command", None) or "list"]
    path = resolve_profiles_path(getattr(args, "profiles_path", None))
    try:
        return handler(args, path)
    except ProfilesError as exc:
        print(f"molehill: {exc}", file=sys.stderr)
        return exc.exit_code


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"molehill: {message}", file=sys.stderr)
    return code


def _cmd_path(args: argparse.Namespace, path: Path) -> int:
    print(path)
    return 0


def _cmd_list(args: argparse.Namespace, path: Path) -> int:
    profiles = load(path).file.profiles
    if not profiles:
        print(f"no profiles yet in {path}")
        print("add one with: molehill profiles add NAME --port PORT")
        return 0
    rows = [("NAME", "LOCAL", "PUBLIC NAME", "AUTOSTART")]
    for profile in profiles.values():
        autostart = "yes" if profile.autostart else "no"
        rows.append((profile.name, profile.local_address, profile.public_name, autostart))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]))
    return 0


def _display(key: str, value: object, *, secrets: bool = False) -> str:
    """How a setting is printed; secrets are masked unless asked for."""
    if value is None or value == ():
        return "(not set)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    if key == "basic_auth" and not secrets:
        return str(value).partition(":")[0] + ":***"
    if key == "token" and not secrets:
        return "(set, hidden)"
    return str(value)


def _cmd_show(args: argparse.Namespace, path: Path) -> int:
    profile = load(path).file.get(args.name)
    lines = [("name", profile.name)]
    for key in PROFILE_OPTIONS:
        shown = _display(key, getattr(profile, key), secrets=args.show_secrets)
        if key == "subdomain" and profile.subdomain is None:
            shown = "(not set: same as the name)"
        if key == "allow" and not profile.allow:
            shown = "(not set: everyone)"
        lines.append((key, shown))
        if key == "subdomain":
            lines.append(("public name", profile.public_name))
    width = max(len(key) for key, _ in lines) + 1
    for key, shown in lines:
        print(f"{key + ':':<{width}} {shown}")
    return 0


def _summary(profile: Profile) -> str:
    return f"{profile.local_address} -> {profile.public_name}"


def _explain(exc: InvalidProfiles, what: str, table: str, options: dict[str, str]) -> str:
    """Problems with command-line values, named by the option that set them."""
    lines = []
    for problem in exc.problems:
        if problem.table == table and problem.key in options:
            lines.append(f"{options[problem.key]}: {problem.message}")
        else:
            lines.append(str(problem))
    if len(lines) == 1:
        return f"{what}: {lines[0]}"
    return f"{what}:\n" + "\n".join(f"  {line}" for line in lines)


def _setting_changes(args: argparse.Namespace) -> dict[str, Any]:
    """Settings given on the command line; a --no-... option yields the setting's default."""
    defaults = {f.name: f.default for f in dataclasses.fields(Profile)}
    changes: dict[str, Any] = {}
    for key in PROFILE_OPTIONS:
        value = getattr(args, key, None)
        if value is None:
            continue
        if value is CLEAR:
            value = defaults[key]
        changes[key] = tuple(value) if isinstance(value, list) else value
    return changes


def _cmd_add(args: argparse.Namespace, path: Path) -> int:
    loaded = load(path)
    try:
        profile = Profile(name=args.name, **_setting_changes(args))
        new_file = loaded.file.with_added(profile)
    except InvalidProfiles as exc:
        what = f"cannot add profile '{args.name}'"
        return _fail(_explain(exc, what, profile_table(args.name), PROFILE_OPTIONS))
    save(loaded.with_file(new_file))
    print(f"added profile '{profile.name}' ({_summary(profile)})")
    return 0


def _cmd_edit(args: argparse.Namespace, path: Path) -> int:
    loaded = load(path)
    old = loaded.file.get(args.name)
    changes = _setting_changes(args)
    if not changes:
        return _fail(
            "nothing to change: give at least one option, e.g. --port 3001 "
            "(see: molehill profiles edit --help)"
        )
    try:
        new = dataclasses.replace(old, **changes)
        new_file = loaded.file.with_replaced(new)
    except InvalidProfiles as exc:
        what = f"cannot change profile '{args.name}'"
        return _fail(_explain(exc, what, profile_table(args.name), PROFILE_OPTIONS))
    changed = [key for key in PROFILE_OPTIONS if getattr(old, key) != getattr(new, key)]
    if not changed:
        print(f"profile '{old.name}' is unchanged")
        return 0
    save(loaded.with_file(new_file))
    details = ", ".join(
        f"{key} {_display(key, getattr(old, key))} -> {_display(key, getattr(new, key))}"
        for key in changed
    )
    print(f"updated profile '{new.name}': {details}")
    return 0


def _cmd_remove(args: argparse.Namespace, path: Path) -> int:
    loaded = load(path)
    profile = loaded.file.get(args.name)
    save(loaded.with_file(loaded.file.without(args.name)))
    print(f"removed profile '{profile.name}' ({_summary(profile)})")
    return 0


def _cmd_set_relay(args: argparse.Namespace, path: Path) -> int:
    loaded = load(path)
    old = loaded.file.relay
    if args.url is None and args.token is None:
        print(f"url:   {_display('url', old.url)}")
        print(f"token: {_display('token', old.token)}")
        return 0
    changes: dict[str, Any] = {}
    for key in RELAY_OPTIONS:
        value = getattr(args, key)
        if value is None:
            continue
        if key == "url" and isinstance(value, list):  # --url once: a string; more: a list
            value = value[0] if len(value) == 1 else tuple(value)
        if value == "-" and key == "token":
            # Reading the token from stdin keeps it out of shell history and `ps` output.
            value = sys.stdin.readline().rstrip("\r\n")
        changes[key] = None if value is CLEAR else value
    try:
        new = dataclasses.replace(old, **changes)
    except InvalidProfiles as exc:
        return _fail(_explain(exc, "cannot set the relay", "relay", RELAY_OPTIONS))
    if new == old:
        print("relay settings are unchanged")
        return 0
    save(loaded.with_file(loaded.file.with_relay(new)))
    details = ", ".join(f"{key} -> {_display(key, getattr(new, key))}" for key in changes)
    print(f"updated relay settings: {details}")
    return 0


_HANDLERS: dict[str, Callable[[argparse.Namespace, Path], int]] = {
    "path": _cmd_path,
    "list": _cmd_list,
    "show": _cmd_show,
    "add": _cmd_add,
    "edit": _cmd_edit,
    "remove": _cmd_remove,
    "set-relay": _cmd_set_relay,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for `python -m tui.commands.profiles ...` (the same as `molehill ...`)."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
