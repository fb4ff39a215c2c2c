"""`molehill requests replay|diff`: send a captured request again (edited, re-signed), compare two.

A replay from this command reads the store's copy, in which secrets are ``[redacted]``: that is
what it sends (with a warning). The process that captured the request holds the originals in
memory; its local API (`POST /api/requests/http/ID/replay`) sends those.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from inspector import CaptureSettings, StoreError, open_store
from inspector.diff import diff_responses
from inspector.message import EditError, ReplayRequest, from_text
from inspector.redact import MARKER, Redactor
from inspector.replay import ReplayError, carries_marker, from_exchange, replay, store_replay
from inspector.resign import KINDS, ResignError, resign
from profiles.errors import ProfilesError
from profiles.paths import resolve_profiles_path
from profiles.store import load
from relay.terminal_text import visible
from tui.commands.profiles import add_profiles_option
from tui.local_api import secret_flags


def add_webhook_secret_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--webhook-secret",
        action="append",
        default=[],
        metavar="KIND=SECRET",
        help=f"re-sign replayed webhooks ({', '.join(KINDS)}); env:VAR_NAME (keeps it out of "
        "ps) or SECRET (repeatable; overrides the profile's webhook_secrets)",
    )


def add_parsers(sub: argparse._SubParsersAction) -> None:
    rep = sub.add_parser(
        "replay",
        help="send a captured request again and store the answer",
        description="Send a captured request again: to the tunnel's local app (default), or "
        "through the public URL with --via-relay. The answer is stored, linked to the original; "
        "compare them with `molehill requests diff`.",
    )
    rep.add_argument("id", type=int, metavar="ID")
    rep.add_argument("--edit", action="store_true", help="edit the request in $EDITOR first")
    rep.add_argument("--via-relay", action="store_true", help="send it to the public URL")
    rep.add_argument(
        "--target",
        metavar="URL",
        help="where to connect, e.g. http://localhost:3000 (default: the tunnel's local app; "
        "with --via-relay the Host header stays the public one)",
    )
    rep.add_argument(
        "--local-insecure", action="store_true", help="accept any certificate from an https app"
    )
    rep.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up if the answer takes longer (default 30)",
    )
    rep.add_argument("--json", action="store_true", help="print the outcome as JSON")
    add_webhook_secret_option(rep)
    add_profiles_option(rep)
    rep.set_defaults(run=run_replay)

    diff = sub.add_parser("diff", help="compare two captured responses")
    diff.add_argument("a", type=int, metavar="ID1")
    diff.add_argument("b", type=int, metavar="ID2")
    diff.add_argument("--json", action="store_true", help="as one JSON object")
    diff.set_defaults(run=run_diff)


def _fail(message: str, code: int = 1) -> int:
    print(f"molehill: {message}", file=sys.stderr)
    return code


def webhook_secrets(flags: list[str], tunnel: str, profiles_path: str | None) -> dict[str, str]:
    """The profile's webhook secrets (a profile named like the tunnel), then the flags'."""
    secrets: dict[str, str] = {}
    try:
        loaded = load(resolve_profiles_path(profiles_path))
        profile = loaded.file.profiles.get(tunnel)
        if profile is not None:
            secrets.update(profile.webhook_secrets)
    except ProfilesError:
        pass  # no usable profiles file: the flags alone
    secrets.update(secret_flags(flags))
    return secrets


def edit_in_editor(request: ReplayRequest) -> ReplayRequest:
    """Open the request in $VISUAL / $EDITOR; the edited request (EditError names the line)."""
    if problem := request.editable():
        raise ReplayError(f"cannot edit this request: {problem}")
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    fd, name = tempfile.mkstemp(prefix="molehill-replay-", suffix=".http")
    path = Path(name)
    with open(fd, "w", encoding="utf-8", newline="") as out:
        out.write(request.to_text())
    try:
        done = subprocess.run([*shlex.split(editor), str(path)], check=False)
    except OSError as exc:
        raise ReplayError(f"cannot start the editor {editor!r}: {exc.strerror}") from None
    if done.returncode != 0:
        raise ReplayError(f"the editor exited with status {done.returncode}; nothing was sent")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        path.unlink()
        raise ReplayError("the edited request is empty; nothing was sent")
    try:
        edited = from_text(text, request.body)
    except EditError as exc:
        lines = text.replace("\r\n", "\n").split("\n")
        # The line may hold a visitor's escape sequence (why it was refused): spelled out.
        shown = visible(lines[exc.line - 1]) if exc.line <= len(lines) else ""
        raise ReplayError(
            f"the edited request, line {exc.line}: {exc.message}\n  {exc.line} | {shown}\n"
            f"molehill: nothing was sent; your edit is kept in {path}"
        ) from None
    path.unlink()
    return edited


def run_replay(args: argparse.Namespace) -> int:
    settings = CaptureSettings(path=args.store)
    try:
        with open_store(settings) as store:
            exchange = store.get(args.id)
            if exchange is None:
                return _fail(f"no captured request {args.id} (see `molehill requests list`)")
            request, from_store = from_exchange(exchange)
            captured = request.copy()
            if args.edit:
                request = edit_in_editor(request)
            secrets = webhook_secrets(
                args.webhook_secret, exchange.tunnel, getattr(args, "profiles_path", None)
            )
            notes = resign(
                request,
                secrets,
                body_redacted=from_store and MARKER.encode() in request.body,
                captured=captured,
            )
            if from_store and carries_marker(request):
                notes.append(
                    "the stored copy has secrets replaced by [redacted], and that is what is "
                    "sent; the process that captured it still holds the originals (replay "
                    "through its local API to send them)"
                )
            ssl_context = None
            if args.local_insecure:
                import ssl

                ssl_context = ssl.create_default_context()
                ssl_context.check_hostname = False
                ssl_context.verify_mode = ssl.CERT_NONE
            done = asyncio.run(
                replay(
                    exchange,
                    request,
                    target=args.target,
                    via_relay=args.via_relay,
                    ssl_context=ssl_context,
                    timeout=args.timeout,
                )
            )
            redactor = Redactor(settings.all_redact_headers, settings.all_redact_keys)
            new_id = store_replay(store, exchange, done, redactor, settings.body_cap)
    except (ReplayError, ResignError) as exc:
        return _fail(str(exc))
    except StoreError as exc:
        return _fail(str(exc))
    record = done.record
    if args.json:
        outcome = {
            "id": new_id,
            "replay_of": exchange.id,
            "url": done.url,
            "status": record.status,
            "duration_ms": round(record.duration_ms, 3),
            "notes": notes,
        }
        print(json.dumps(outcome))
        return 0
    for note in notes:
        print(f"molehill: {note}", file=sys.stderr)
    print(
        f"replayed #{exchange.id} to {done.url}: {record.status} in {record.duration_ms:.1f} ms; "
        f"stored as #{new_id} (compare: molehill requests diff {exchange.id} {new_id})"
    )
    return 0


def run_diff(args: argparse.Namespace) -> int:
    try:
        with open_store(CaptureSettings(path=args.store)) as store:
            a, b = store.get(args.a), store.get(args.b)
    except StoreError as exc:
        return _fail(str(exc))
    for wanted, found in ((args.a, a), (args.b, b)):
        if found is None:
            return _fail(f"no captured request {wanted} (see `molehill requests list`)")
    assert a is not None and b is not None
    result = diff_responses(a, b)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(visible("\n".join(result.lines()), lines=True))  # the responses' text: no controls
    return 0
