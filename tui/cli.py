"""The `molehill` command: dispatches to one module per subcommand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from relay import __version__
from relay.compiled import build_name
from tui.commands import connections, dashboard, env, http, logs, relay, service, start, tcp
from tui.commands import profiles as profiles_command
from tui.commands import requests as requests_command
from tui.commands.profiles import add_profiles_option
from tui.output import quiet_stdout


class _Version(argparse.Action):
    """``--version``: the version, and whether the data path is compiled (looked up when asked)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"molehill {__version__} (data path: {build_name()})")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="molehill",
        description="Self-hostable tunnels to your local web apps, with a live dashboard.",
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    add_profiles_option(parser)
    parser.add_argument(
        "--log-size",
        type=int,
        default=5000,
        metavar="N",
        help="dashboard: requests kept per tunnel (default 5000)",
    )
    parser.add_argument(
        "--capture-bytes",
        type=int,
        default=64 * 1024,
        metavar="N",
        help="dashboard: body bytes kept per request for the details view (default 65536; 0: none)",
    )
    dashboard.add_dashboard_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    http.add_parser(sub)
    tcp.add_parser(sub)
    start.add_parser(sub)
    profiles_command.add_parser(sub)
    relay.add_parser(sub)
    dashboard.add_parser(sub)
    requests_command.add_parser(sub)
    connections.add_parser(sub)
    logs.add_parser(sub)
    env.add_parser(sub)
    service.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        return dashboard.run_dashboard(args)
    try:
        code = int(args.run(args))
        sys.stdout.flush()  # here, where a closed pipe can be caught, not at interpreter exit
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `molehill ... | head`: the reader has had enough, as with `yes | head`. Without a
        # quiet stdout the interpreter's own last flush would print "Exception ignored".
        quiet_stdout()
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
