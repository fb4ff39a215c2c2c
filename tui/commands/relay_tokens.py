"""`molehill relay token add|list|revoke`: agent tokens in the relay's config file.

A token is printed once, when it is made; the config keeps only its SHA-256. A running relay
notices the change within a second (it watches the file), so a revoked token's agents are
disconnected at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from relay.server.access import new_token, token_hash
from relay.server.config import ConfigError, load_config
from tui.commands import relay_tokens_shared

HEADER = (
    "# molehill relay config. `molehill relay token ...` rewrites this file: comments and\n"
    "# formatting are not kept. Keys: docs/self-hosting.md\n\n"
)


def add_parser(relay_parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    """Add `token ...`; return the relay's subcommands (`cluster ...` joins them)."""
    sub = relay_parser.add_subparsers(dest="relay_command", metavar="{token,cluster}")
    token = sub.add_parser("token", help="manage agent tokens in the config file")
    token_sub = token.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    add = token_sub.add_parser("add", help="make a new token (printed once)")
    add.add_argument("label", help="a name for the token's owner, e.g. alice or ci")
    add.add_argument(
        "--names",
        nargs="+",
        default=[],
        metavar="GLOB",
        help="names only this token may take, e.g. 'alice-*' demo",
    )
    add.add_argument("--max-tunnels", type=int, default=0, help="tunnels open at once (0: any)")
    add.add_argument(
        "--ports",
        nargs="+",
        type=int,
        default=[],
        metavar="PORT",
        help="public TCP ports only this token may take",
    )
    add.add_argument("--max-tcp-ports", type=int, default=0, help="TCP ports held at once (0: any)")
    token_sub.add_parser("list", help="list tokens (labels, reserved names, state)")
    revoke = token_sub.add_parser("revoke", help="revoke a token; its agents are disconnected")
    revoke.add_argument("label")
    for command in token_sub.choices.values():
        where = command.add_mutually_exclusive_group(required=True)
        where.add_argument(
            "--config",
            metavar="FILE",
            help="the relay's config file (created by token add if missing)",
        )
        where.add_argument(
            "--cluster",
            dest="token_cluster",
            metavar="redis://HOST:PORT/DB",
            help="a cluster's Redis: the token is shared by every node at once",
        )
        command.set_defaults(run=run)
    return sub


def new_entry(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """A new token, and its entry (without the label) as `token add`'s options say."""
    token = new_token()
    entry: dict[str, Any] = {"hash": token_hash(token)}
    if args.names:
        entry["names"] = args.names
    if args.max_tunnels:
        entry["max_tunnels"] = args.max_tunnels
    if args.ports:
        entry["ports"] = args.ports
    if args.max_tcp_ports:
        entry["max_tcp_ports"] = args.max_tcp_ports
    return token, entry


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        load_config(path)  # validate the whole file before touching it
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = HEADER + tomli_w.dumps(data)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)  # hashes only, but the file says who may connect
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    if args.token_cluster:
        return relay_tokens_shared.run(args)
    path = Path(args.config)
    try:
        data = _read(path)
    except ConfigError as exc:
        print(f"molehill: {exc}", file=sys.stderr)
        return 2
    tokens: list[dict[str, Any]] = data.setdefault("tokens", [])
    command = args.token_command
    if command == "list":
        if not tokens:
            print(
                f"no tokens in {path}; add one with: molehill relay token add LABEL --config {path}"
            )
            return 0
        print(f"{'LABEL':<16} {'STATE':<8} {'MAX':>4}  RESERVED NAMES")
        for t in tokens:
            state = "revoked" if t.get("revoked") else "active"
            names = ", ".join(t.get("names", [])) or "-"
            print(f"{t['label']:<16} {state:<8} {t.get('max_tunnels', 0) or '-':>4}  {names}")
        return 0
    found = next((t for t in tokens if t["label"] == args.label), None)
    if command == "add":
        if found is not None:
            print(
                f"molehill: a token labelled '{args.label}' exists; revoke it or choose "
                "another label",
                file=sys.stderr,
            )
            return 1
        token, entry = new_entry(args)
        tokens.append({"label": args.label, **entry})
        _write(path, data)
        print(token)
        print(
            f"token '{args.label}' added to {path}. It is shown only now: give it to the agent "
            "(molehill http PORT --token TOKEN, or [relay] token in its profiles file).",
            file=sys.stderr,
        )
        return 0
    if found is None:
        print(f"molehill: no token labelled '{args.label}' in {path}", file=sys.stderr)
        return 1
    found["revoked"] = True
    _write(path, data)
    print(f"token '{args.label}' revoked; a running relay disconnects its agents within a second")
    return 0
