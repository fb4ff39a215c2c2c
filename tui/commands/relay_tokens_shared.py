"""`molehill relay token add|list|revoke --cluster URL`: agent tokens shared in a cluster's Redis.

Every node reads them at once (pub/sub) and merges them with its config file's tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from redis.exceptions import RedisError

from relay.cluster.settings import redact_url
from relay.server import shared_tokens
from relay.server.config import ConfigError


def run(args: argparse.Namespace) -> int:
    url = args.token_cluster
    try:
        return asyncio.run(_run(args, url))
    except (RedisError, OSError, TimeoutError) as exc:
        print(
            f"molehill: cannot reach the cluster's Redis at {redact_url(url)}: "
            f"{str(exc).rstrip('.') or type(exc).__name__}",
            file=sys.stderr,
        )
        return 1
    except ConfigError as exc:
        print(f"molehill: {exc}", file=sys.stderr)
        return 2


async def _run(args: argparse.Namespace, url: str) -> int:
    from tui.commands.relay_tokens import new_entry  # (that module dispatches to this one)

    where = f"the cluster at {redact_url(url)}"
    if args.token_command == "list":
        entries = await shared_tokens.entries(url)
        if not entries:
            print(
                f"no tokens in {where}; add one with: molehill relay token add LABEL --cluster URL"
            )
            return 0
        print(f"{'LABEL':<16} {'STATE':<8} {'MAX':>4}  RESERVED NAMES")
        for t in entries:
            state = "revoked" if t.revoked else "active"
            names = ", ".join(t.names) or "-"
            print(f"{t.label:<16} {state:<8} {t.max_tunnels or '-':>4}  {names}")
        return 0
    if args.token_command == "add":
        token, entry = new_entry(args)
        if not await shared_tokens.add(url, args.label, entry):
            print(
                f"molehill: a token labelled '{args.label}' exists in {where}; revoke it or "
                "choose another label",
                file=sys.stderr,
            )
            return 1
        print(token)
        print(
            f"token '{args.label}' added to {where}: every node accepts it now. It is shown only "
            "now: give it to the agent (molehill http PORT --token TOKEN).",
            file=sys.stderr,
        )
        return 0
    if not await shared_tokens.revoke(url, args.label):
        print(f"molehill: no token labelled '{args.label}' in {where}", file=sys.stderr)
        return 1
    print(f"token '{args.label}' revoked in {where}; every node disconnects its agents at once")
    return 0
