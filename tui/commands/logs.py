"""`molehill logs NAME [-f]`: the output of a profile's command, from its log file."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from pathlib import Path

from profiles.errors import ProfilesError
from profiles.paths import resolve_profiles_path
from profiles.store import load
from runner.output import log_path
from tui.commands.profiles import add_profiles_option

FOLLOW_EVERY = 0.2  # seconds between looks at the file while following


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "logs",
        help="show (or follow) the output of a profile's command",
        description=(
            "Print the output of the command a profile runs (its log file, written by the "
            "dashboard or `molehill start`), from any terminal. Lines starting with '---' "
            "are molehill's own: started, exited, stopped."
        ),
    )
    parser.add_argument("name", metavar="NAME", help="the profile")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    parser.add_argument(
        "-n", "--lines", type=int, default=100, metavar="N", help="the last N lines (100; 0: all)"
    )
    add_profiles_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        profile = load(resolve_profiles_path(getattr(args, "profiles_path", None))).file.get(
            args.name
        )
    except ProfilesError as exc:
        print(f"molehill: {exc}", file=sys.stderr)
        return exc.exit_code
    path = log_path(profile.name)
    if profile.command is None and not path.exists():
        print(
            f"molehill: profile '{profile.name}' runs no command, so there is no output to show; "
            f'add command = "..." to [profiles.{profile.name}]',
            file=sys.stderr,
        )
        return 1
    if not path.exists() and not args.follow:
        print(
            f"molehill: no output from '{profile.name}' yet ({path} does not exist): its command "
            f"has not run; `molehill start {profile.name}` runs it",
            file=sys.stderr,
        )
        return 1
    offset = print_tail(path, args.lines)
    if args.follow:
        follow(path, offset)
    return 0


def print_tail(path: Path, count: int) -> int:
    """Print the last `count` lines (all if 0); the offset to follow from."""
    if not path.exists():
        return 0
    with path.open("rb") as file:
        lines: deque[bytes] = deque(file, maxlen=count or None)
        offset = file.tell()
    sys.stdout.write(b"".join(lines).decode("utf-8", "replace"))
    sys.stdout.flush()
    return offset


def follow(path: Path, offset: int) -> None:
    """Print what is appended, until Ctrl-C; a file moved aside (rotated) is read anew."""
    inode = path.stat().st_ino if path.exists() else None
    while True:
        try:
            stat = path.stat()
        except FileNotFoundError:
            time.sleep(FOLLOW_EVERY)
            continue
        if stat.st_ino != inode or stat.st_size < offset:
            inode, offset = stat.st_ino, 0
        if stat.st_size > offset:
            with path.open("rb") as file:
                file.seek(offset)
                data = file.read()
            offset += len(data)
            os.write(sys.stdout.fileno(), data)
        time.sleep(FOLLOW_EVERY)
