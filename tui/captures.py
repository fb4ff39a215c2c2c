"""The front ends' link to the capture store: the --no-capture flag and opening the writer."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from inspector import CaptureSettings, CaptureWriter, StoreError, open_writer


def add_capture_option(parser: argparse.ArgumentParser, top_level: bool = False) -> None:
    """``top_level``: the `molehill` parser itself (see tui.local_api.add_api_options)."""
    default: dict[str, Any] = {} if top_level else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "--no-capture",
        action="store_true",
        **default,
        help="keep no request history on disk (default: every exchange is kept, secrets "
        "redacted, for `molehill requests`)",
    )


def open_capture_writer(
    enabled: bool, settings: CaptureSettings | None = None
) -> CaptureWriter | None:
    """A writer for the user's capture store, or None: captures off, or a store that cannot be
    opened (said on stderr once; the tunnels run without captures rather than not at all)."""
    if not enabled:
        return None
    settings = settings or CaptureSettings()
    try:
        return open_writer(settings, on_error=_failed_later)
    except StoreError as exc:
        print(f"molehill: request history is off: {exc}", file=sys.stderr, flush=True)
        return None


def _failed_later(exc: StoreError) -> None:
    print(f"molehill: request history stopped: {exc}", file=sys.stderr, flush=True)


# Seconds a quitting front end waits for the store. It runs on idle CPU only: on a saturated
# machine it may be far behind, and finishes on its own after this process has gone.
CLOSE_WAIT = 3.0


def close_capture_writer(writer: CaptureWriter, wait: float = CLOSE_WAIT) -> None:
    """Close the writer (it stores what is queued) and say on stderr what it could not keep, or
    what it is still storing in the background."""
    if not writer.close(wait):
        print(
            f"molehill: request history: {writer.queued} exchange(s) still being stored in the "
            f"background (process {writer.pid}); `molehill requests` shows them when it is done",
            file=sys.stderr,
            flush=True,
        )
    if writer.dropped:
        print(
            f"molehill: request history: {writer.dropped} exchange(s) not kept (the writer fell "
            f"behind or the store failed), {writer.written} kept",
            file=sys.stderr,
            flush=True,
        )
