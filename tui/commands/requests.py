"""`molehill requests list|show|curl|export|clear|replay|diff`: the capture store, any terminal.

They open the store file on their own (SQLite WAL lets them read while a dashboard or `molehill
start` writes), so they work during a run and after it. Filters: docs/inspector.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

from inspector import (
    CaptureSettings,
    CaptureStore,
    Filter,
    FilterError,
    StoreError,
    StoreMissing,
    open_store,
    parse,
)
from inspector.export import body_needs_file, curl_command
from inspector.messages_view import messages_json, messages_lines
from inspector.model import StoredBody, StoredExchange
from inspector.pages import PagedDocument, har_pages
from relay.terminal_text import has_controls, visible
from tui.bodies import hexdump
from tui.commands.requests_replay import add_parsers as add_replay_parsers
from tui.format import human_size, ms
from tui.private_file import open_private, write_private


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "requests",
        help="list, show, replay, diff, export or clear captured requests",
        description=(
            "Captured requests, read from the capture store (see docs/inspector.md). A filter "
            "such as 'status:5xx method:POST' may be given as several words; put a negated "
            "term after --, e.g. `molehill requests list -- -status:2xx`."
        ),
    )
    sub = parser.add_subparsers(dest="requests_command", metavar="COMMAND", required=True)

    listing = sub.add_parser("list", help="the newest requests first, one per line")
    listing.add_argument("filter", nargs="*", metavar="FILTER", help="e.g. status:5xx dur>1s")
    listing.add_argument("--tunnel", metavar="NAME", help="only this tunnel's requests")
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (50)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(run=run_list)

    show = sub.add_parser("show", help="one request and its response, heads and bodies")
    show.add_argument("id", type=int, metavar="ID")
    show.add_argument(
        "--json", action="store_true", help="as one JSON object (bodies base64 when not UTF-8)"
    )
    show.set_defaults(run=run_show)

    curl = sub.add_parser("curl", help="print a curl command that sends the request again")
    curl.add_argument("id", type=int, metavar="ID")
    curl.add_argument(
        "--url",
        metavar="BASE",
        help="where to send it, e.g. http://localhost:3000 "
        "(default: https:// and the request's Host)",
    )
    curl.add_argument(
        "--body-file",
        type=Path,
        metavar="FILE",
        help="where to write a binary body (default: a new file in the temporary directory)",
    )
    curl.set_defaults(run=run_curl)

    export = sub.add_parser("export", help="write requests to a HAR 1.2 file")
    export.add_argument("--har", required=True, metavar="FILE", help="the file ('-': stdout)")
    export.add_argument("filter", nargs="*", metavar="FILTER", help="only the requests it passes")
    export.add_argument("--tunnel", metavar="NAME", help="only this tunnel's requests")
    export.add_argument("--url", metavar="BASE", help="base of the URLs (default: https://Host)")
    export.set_defaults(run=run_export)

    clear = sub.add_parser("clear", help="delete captured requests")
    clear.add_argument("--tunnel", metavar="NAME", help="only this tunnel's requests")
    clear.set_defaults(run=run_clear)

    add_replay_parsers(sub)

    for command in sub.choices.values():
        command.add_argument(
            "--store",
            type=Path,
            metavar="FILE",
            help="the capture store (default: $MOLEHILL_CAPTURE_FILE or the user data directory)",
        )


def _fail(message: str, code: int = 1) -> int:
    print(f"molehill: {message}", file=sys.stderr)
    return code


def _settings(args: argparse.Namespace) -> CaptureSettings:
    return CaptureSettings(path=args.store)


def _filter(args: argparse.Namespace) -> Filter:
    return parse(" ".join(args.filter))


def _filter_error(text: str, exc: FilterError) -> int:
    print(f"molehill: {exc}", file=sys.stderr)
    print(f"  {text}\n  {' ' * exc.position}^", file=sys.stderr)
    return 2


def _open(args: argparse.Namespace) -> CaptureStore:
    return open_store(_settings(args))


def run_list(args: argparse.Namespace) -> int:
    try:
        flt = _filter(args)
    except FilterError as exc:
        return _filter_error(" ".join(args.filter), exc)
    try:
        with _open(args) as store:
            found = store.select(flt, tunnel=args.tunnel, limit=args.limit)
    except StoreMissing as exc:
        print(f"molehill: {exc}", file=sys.stderr)
        return 0
    except StoreError as exc:
        return _fail(str(exc))
    if args.json:
        for e in found:
            print(json.dumps(e.summary()))
        return 0
    if not found:
        print("no captured requests match", file=sys.stderr)
        return 0
    print(
        f"{'ID':>7}  {'TIME':19}  {'TUNNEL':12}  {'METHOD':7} {'STATUS':>6} {'DURATION':>9} "
        f"{'SIZE':>8}  PATH"
    )
    for e in found:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.time))
        print(
            f"{e.id:>7}  {stamp}  {e.tunnel[:12]:12}  {e.method[:7]:7} {e.status or '---':>6} "
            f"{ms(e.duration_ms):>9} {human_size(e.bytes_in + e.bytes_out):>8}  {visible(e.path)}"
        )
    return 0


def _get(args: argparse.Namespace) -> StoredExchange | int:
    try:
        with _open(args) as store:
            found = store.get(args.id)
    except StoreError as exc:
        return _fail(str(exc))
    if found is None:
        return _fail(f"no captured request {args.id} (see `molehill requests list`)")
    return found


def _body_json(body: StoredBody) -> dict[str, Any]:
    text = body.text()
    out: dict[str, Any] = {"size": body.size, "truncated": body.truncated, "sha256": body.sha256}
    if text is not None:
        out["text"] = text
    else:
        out["base64"] = base64.b64encode(body.data).decode("ascii")
    return out


def _body_lines(label: str, body: StoredBody) -> list[str]:
    if not body.data and not body.size:
        return []
    note = f"{label} body: {body.size} bytes"
    if body.truncated:
        note += f", cut at {len(body.data)}" + (f" (sha256 {body.sha256})" if body.sha256 else "")
    text = body.text()
    shown = hexdump(body.data) if text is None or has_controls(text) else text
    return [f"-- {note}", shown]


def run_show(args: argparse.Namespace) -> int:
    found = _get(args)
    if isinstance(found, int):
        return found
    e = found
    if args.json:
        data = e.summary()
        data["request"] = {
            "head": e.request_head.decode("latin-1"),
            "headers": e.request_headers,
            "body": _body_json(e.request_body),
        }
        data["response"] = {
            "head": e.response_head.decode("latin-1"),
            "headers": e.response_headers,
            "body": _body_json(e.response_body),
        }
        data["messages"] = messages_json(e)
        print(json.dumps(data))
        return 0
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.time))
    out = [
        f"#{e.id}  {e.tunnel}  {stamp}  from {e.client}  {ms(e.duration_ms)}"
        f" (first byte {ms(e.ttfb_ms)})",
        "",
    ]
    if e.request_head:
        out.append(e.request_head.decode("latin-1").rstrip("\r\n"))
    else:
        out += [
            f"{e.method} {e.path} HTTP/{e.http_version}",
            "(heads and bodies were not captured)",
        ]
    out += _body_lines("request", e.request_body)
    out.append("")
    if e.response_head:
        out.append(e.response_head.decode("latin-1").rstrip("\r\n"))
    else:
        out.append(f"(no response: status {e.status or 'none'})")
    out += _body_lines("response", e.response_body)
    if lines := messages_lines(e):
        out += ["", *lines]
    # Visitors' text on the terminal: escape sequences in a header or a message are shown, not
    # obeyed (an OSC 52 one would fill the clipboard).
    print(visible("\n".join(out), lines=True))
    return 0


def run_curl(args: argparse.Namespace) -> int:
    found = _get(args)
    if isinstance(found, int):
        return found
    body_file = None
    if found.request_body.data and body_needs_file(found.request_body.data):
        body_file = args.body_file
        if body_file is None:
            fd, name = tempfile.mkstemp(prefix=f"molehill-request-{found.id}-", suffix=".body")
            body_file = Path(name)
            with open(fd, "wb") as out:
                out.write(found.request_body.data)
        else:
            try:
                write_private(body_file, found.request_body.data)
            except OSError as exc:
                return _fail(f"cannot write {body_file}: {exc.strerror or exc}")
    command, warnings = curl_command(found, args.url, body_file)
    for warning in warnings:
        print(f"molehill: {warning}", file=sys.stderr)
    print(command)
    return 0


def run_export(args: argparse.Namespace) -> int:
    try:
        flt = _filter(args)
    except FilterError as exc:
        return _filter_error(" ".join(args.filter), exc)
    try:
        store: CaptureStore | None = _open(args)
    except StoreMissing:
        store = None  # nothing captured yet: an empty HAR
    except StoreError as exc:
        return _fail(str(exc))
    doc = har_pages(flt, args.tunnel, args.url, indent=1)
    try:
        if args.har == "-":
            return _write_pages(doc, store, sys.stdout.buffer, None)
        path = Path(args.har)
        try:
            out = open_private(path)
        except OSError as exc:
            return _fail(f"cannot write {args.har}: {exc.strerror}")
        with out:
            code = _write_pages(doc, store, out, path)
    finally:
        if store is not None:
            store.close()
    if code == 0:
        print(f"wrote {doc.written} requests to {args.har}", file=sys.stderr)
    return code


def _write_pages(
    doc: PagedDocument, store: CaptureStore | None, out: BinaryIO, path: Path | None
) -> int:
    """Write the document a page at a time (a store of any size costs a page of memory). If it
    cannot be finished, the file is removed: a HAR cut short is no HAR."""
    try:
        while not doc.done:
            out.write(doc.next_piece(store))
        out.flush()
        return 0
    except (StoreError, OSError) as exc:
        if path is None:
            if not isinstance(exc, StoreError):
                raise  # stdout closed (`| head`): the command's main says nothing of it
            return _fail(f"the export stopped after {doc.written} requests: {exc}")
        why = str(exc) if isinstance(exc, StoreError) else exc.strerror or str(exc)
        path.unlink(missing_ok=True)
        return _fail(f"cannot write {path}: {why} (the unfinished file is removed)")


def run_clear(args: argparse.Namespace) -> int:
    try:
        with _open(args) as store:
            gone = store.clear(args.tunnel)
    except StoreMissing:
        gone = 0
    except StoreError as exc:
        return _fail(str(exc))
    which = f" of tunnel {args.tunnel}" if args.tunnel else ""
    print(f"deleted {gone} captured requests{which}")
    return 0
