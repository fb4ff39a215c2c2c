"""The front ends' link to the local API: --api/--no-api/--webhook-secret and starting it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inspector import CaptureSettings, CaptureWriter
from inspector.api import InspectorApi, TunnelInfo
from inspector.api_server import is_loopback, start_server
from inspector.resign import ResignError, parse_secret_flag
from relay.agent.tcp import TcpLedger
from tui.output import LineWriter

DEFAULT_PORT = 4040
LAST_PORT = 4050  # 4040 taken: the next free one up to here, as ngrok does


@dataclass(slots=True)
class ApiOptions:
    """Where the API listens (None: nowhere) and the webhook secrets replays sign with."""

    host: str = "127.0.0.1"
    port: int | None = DEFAULT_PORT
    fixed: bool = False  # --api given: that port or nothing
    webhook_secrets: dict[str, str] = field(default_factory=dict)


def tcp_view(ledger: TcpLedger) -> Callable[[], dict[str, Any]]:
    """What /api/connections shows of a TCP tunnel, read when asked."""

    def view() -> dict[str, Any]:
        rate_in, rate_out = ledger.throughput()
        moved_in, moved_out = ledger.bytes_moved()
        return {
            "open": len(ledger.open),
            "total": ledger.total,
            "bytes_in": moved_in,
            "bytes_out": moved_out,
            "throughput": {"in": round(rate_in, 1), "out": round(rate_out, 1)},
            "connections": [record.to_json() for record in ledger.listing()],
        }

    return view


def api_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:4040")
    if not is_loopback(host):
        raise argparse.ArgumentTypeError(
            f"{host!r} is not a loopback address: the API listens on 127.0.0.1, ::1 or "
            "localhost only"
        )
    return host, int(port)


def add_api_options(
    parser: argparse.ArgumentParser, secrets: bool = True, top_level: bool = False
) -> None:
    """``top_level``: the `molehill` parser itself. A subcommand's copies default to SUPPRESS so
    that `molehill --no-api http 3000` keeps the top-level value instead of resetting it."""
    default: dict[str, Any] = {} if top_level else {"default": argparse.SUPPRESS}
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--api",
        **default,
        type=api_address,
        metavar="HOST:PORT",
        help=f"serve the local API here (default 127.0.0.1:{DEFAULT_PORT}, or the next free "
        f"port up to {LAST_PORT}); loopback only",
    )
    group.add_argument("--no-api", action="store_true", help="serve no local API", **default)
    if secrets:
        parser.add_argument(
            "--webhook-secret",
            action="append",
            default=[],
            metavar="KIND=SECRET",
            help="re-sign webhooks replayed through the API (stripe, github, standard); "
            "env:VAR_NAME (keeps it out of ps) or SECRET (repeatable)",
        )


def secret_flags(flags: list[str]) -> dict[str, str]:
    """--webhook-secret flags as {kind: spec}; raises ResignError for a bad one. A secret written
    on the command line gets a warning: every user of the machine can read it in ``ps``."""
    secrets = dict(parse_secret_flag(f) for f in flags)
    for kind, spec in secrets.items():
        if not spec.startswith("env:"):
            print(
                f"molehill: warning: the {kind} webhook secret on the command line can be read by "
                f"every user of this machine (ps); give it as --webhook-secret {kind}=env:VAR_NAME "
                "or in the profile's webhook_secrets",
                file=sys.stderr,
            )
    return secrets


def api_options(args: argparse.Namespace) -> ApiOptions | None:
    """The options from the command line; raises ResignError for a bad --webhook-secret."""
    secrets = secret_flags(getattr(args, "webhook_secret", []))
    if args.no_api:
        return None
    if args.api is not None:
        return ApiOptions(args.api[0], args.api[1], True, secrets)
    return ApiOptions(webhook_secrets=secrets)


def bad_secret(exc: ResignError) -> int:
    print(f"molehill: {exc}", file=sys.stderr)
    return 2


async def start_api(
    options: ApiOptions,
    captures: CaptureWriter | None,
    tunnels: Callable[[], list[TunnelInfo]],
    as_json: bool,
    out: LineWriter,
) -> tuple[asyncio.Server, InspectorApi] | None:
    """Serve the API; its address goes to stderr first (stdout keeps one line per tunnel event).
    None (and why, on stderr) if it cannot listen: the tunnels run on without it."""
    settings = captures.settings if captures is not None else CaptureSettings(enabled=False)
    api = InspectorApi(settings, tunnels, captures, options.webhook_secrets)
    port = options.port or 0
    last = port if options.fixed or not port else LAST_PORT
    try:
        server = await start_server(api.handle, options.host, port, last)
    except OSError as exc:
        where = f"{options.host}:{port}" + ("" if last == port else f"-{last}")
        print(
            f"molehill: the local API is off: cannot listen on {where} ({exc.strerror or exc}); "
            "--api HOST:PORT picks another port",
            file=sys.stderr,
            flush=True,
        )
        return None
    host, bound = server.sockets[0].getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{bound}"
    if as_json:
        print(json.dumps({"event": "api", "url": url}), file=sys.stderr, flush=True)
    else:
        print(f"molehill: local API at {url}  (try {url}/api/tunnels)", file=sys.stderr, flush=True)
    return server, api
