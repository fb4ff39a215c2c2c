"""`molehill service start|stop|restart|status|reload|run|install`: tunnels in the background."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from profiles.errors import ProfilesError
from profiles.paths import resolve_profiles_path
from profiles.store import load
from tui.captures import add_capture_option
from tui.commands.profiles import add_profiles_option
from tui.local_api import add_api_options, api_options
from tui.service.client import ServiceConnection, ServiceGone
from tui.service.paths import ServicePaths, make_private_dir, service_paths
from tui.service.pidlock import Running, alive, read_running
from tui.service.status_table import status_lines
from tui.service.unit import cli_command, unit_dir, unit_text

START_TIMEOUT = 20.0  # seconds for a new service to answer on its socket
STOP_TIMEOUT = 30.0  # seconds for a stopping service to close its tunnels and exit


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    service = subparsers.add_parser(
        "service",
        help="run the profiles' tunnels in a background service the dashboard attaches to",
        description=(
            "One background process per profiles file holds the tunnels (those with "
            "autostart = true start with it), the request history and the local API; "
            "`molehill` attaches to it, and its tunnels outlive the dashboard and the terminal."
        ),
    )
    add_profiles_option(service)
    actions = service.add_subparsers(dest="service_action", metavar="ACTION", required=True)
    for name, text, run in (
        ("start", "start the service in the background", run_start),
        ("run", "run the service in the foreground (what systemd runs)", run_foreground),
        ("restart", "stop the service, then start it again", run_restart),
    ):
        action = actions.add_parser(name, help=text, description=text)
        add_capture_option(action)
        add_api_options(action, secrets=False)
        add_profiles_option(action)
        if name == "run":
            action.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)
        action.set_defaults(run=run)
    stop = actions.add_parser("stop", help="stop the service: its tunnels close (GOAWAY)")
    add_profiles_option(stop)
    stop.set_defaults(run=run_stop)
    status = actions.add_parser("status", help="the service's tunnels: state, URL, uptime, ...")
    status.add_argument("--json", action="store_true", help="one JSON object")
    add_profiles_option(status)
    status.set_defaults(run=run_status)
    reload = actions.add_parser(
        "reload", help="re-read the profiles file; unchanged tunnels keep running"
    )
    add_profiles_option(reload)
    reload.set_defaults(run=run_reload)
    install = actions.add_parser("install", help="write a systemd user unit for the service")
    install.add_argument("--name", default="molehill", help="unit name (default molehill)")
    install.add_argument("--force", action="store_true", help="replace an existing unit file")
    add_profiles_option(install)
    install.set_defaults(run=run_install)


def _paths(args: argparse.Namespace) -> ServicePaths:
    return service_paths(resolve_profiles_path(getattr(args, "profiles_path", None)))


def _err(text: str) -> None:
    print(f"molehill: {text}", file=sys.stderr, flush=True)


def _where(running: Running) -> str:
    return f"pid {running.pid}, socket {running.socket}, log {running.log}"


# -- start / run ------------------------------------------------------------------------------


def _child_args(args: argparse.Namespace, paths: ServicePaths) -> list[str]:
    command = [*cli_command(paths.profiles), "service", "run", "--detached"]
    if getattr(args, "no_capture", False):
        command.append("--no-capture")
    if getattr(args, "no_api", False):
        command.append("--no-api")
    elif getattr(args, "api", None) is not None:
        command += ["--api", f"{args.api[0]}:{args.api[1]}"]
    return command


def run_start(args: argparse.Namespace) -> int:
    paths = _paths(args)
    if problem := paths.problem():
        _err(problem)
        return 2
    if (running := read_running(paths)) is not None:
        _err(
            f"a service already runs for {paths.profiles}: {_where(running)}\n"
            "molehill: `molehill service status` shows it; `molehill service restart` restarts it"
        )
        return 1
    try:
        load(paths.profiles)  # a broken file is said here, not in a log file
    except ProfilesError as exc:
        _err(str(exc))
        return 2
    make_private_dir(paths.log.parent)
    offset = paths.log.stat().st_size if paths.log.exists() else 0
    with open(paths.log, "ab") as log_file:
        child = subprocess.Popen(
            _child_args(args, paths),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,  # no controlling terminal: closing it sends no SIGHUP
            cwd="/",
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if child.poll() is not None:
            _err(f"the service exited at start (code {child.returncode}); its log says:")
            print(_log_since(paths.log, offset), file=sys.stderr, end="", flush=True)
            return 1
        try:
            status = _request(paths, "status")
        except (OSError, ServiceGone):
            time.sleep(0.05)
            continue
        print(f"molehill service started: pid {status['pid']}, socket {paths.socket}")
        print(f"log: {paths.log}")
        for line in status_lines(status, header=False):
            print(line)
        return 0
    _err(
        f"the service (pid {child.pid}) did not answer within {START_TIMEOUT:.0f}s; see {paths.log}"
    )
    return 1


def _log_since(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")[-4000:]
    except OSError:
        return ""


def run_foreground(args: argparse.Namespace) -> int:
    from inspector import CaptureSettings
    from tui.service.main import run_service  # the service's modules load only here

    paths = _paths(args)
    if problem := paths.problem():
        _err(problem)
        return 2
    captures = CaptureSettings(enabled=not getattr(args, "no_capture", False))
    return run_service(paths, api_options(args), captures, detached=args.detached)


def run_restart(args: argparse.Namespace) -> int:
    code = run_stop(args)
    return code or run_start(args)


# -- stop / status / reload -------------------------------------------------------------------


def run_stop(args: argparse.Namespace) -> int:
    paths = _paths(args)
    running = read_running(paths)
    if running is None:
        print(f"molehill: no service runs for {paths.profiles}")
        return 0
    with contextlib.suppress(ProcessLookupError):
        os.kill(running.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while read_running(paths) is not None or alive(running.pid):
        if time.monotonic() > deadline:
            _err(
                f"the service (pid {running.pid}) is still closing after {STOP_TIMEOUT:.0f}s; "
                f"`kill -9 {running.pid}` ends it at once (its tunnels then drop without GOAWAY)"
            )
            return 1
        time.sleep(0.05)
    print(f"molehill service stopped (was pid {running.pid})")
    return 0


def _request(paths: ServicePaths, op: str) -> dict[str, Any]:
    conn = ServiceConnection(paths.socket, timeout=10.0)
    try:
        return conn.request(op)
    finally:
        conn.close()


def run_status(args: argparse.Namespace) -> int:
    paths = _paths(args)
    running = read_running(paths)
    if running is None:
        if args.json:
            print(json.dumps({"running": False, "profiles": str(paths.profiles)}))
        else:
            print(f"molehill: no service runs for {paths.profiles} (`molehill service start`)")
        return 3
    try:
        status = _request(paths, "status")
    except (OSError, ServiceGone) as exc:
        # Starting (the lock is taken before the socket listens), or stuck: said either way,
        # and in JSON too, so a script polling `status --json` always gets an object.
        problem = f"service pid {running.pid} holds the lock but its socket does not answer: {exc}"
        if args.json:
            print(json.dumps({"running": True, "answering": False, "pid": running.pid,
                              "error": problem}))  # fmt: skip
        _err(problem)
        return 1
    status.pop("id", None)
    status.pop("ok", None)
    if args.json:
        print(json.dumps({"running": True, **status}))
    else:
        for line in status_lines(status, header=True):
            print(line)
    return 0


def run_reload(args: argparse.Namespace) -> int:
    paths = _paths(args)
    if read_running(paths) is None:
        _err(f"no service runs for {paths.profiles}")
        return 3
    try:
        outcome = _request(paths, "reload")
    except (OSError, ServiceGone) as exc:
        _err(f"the service does not answer: {exc}")
        return 1
    if not outcome.get("ok"):
        _err(f"profiles not reloaded, tunnels left as they were: {outcome.get('error')}")
        return 2
    for what in ("started", "restarted", "stopped", "unchanged"):
        if outcome.get(what):
            print(f"{what}: {', '.join(outcome[what])}")
    if outcome.get("relay_changed"):
        print("[relay] changed: `molehill service restart` applies it")
    return 0


# -- install ---------------------------------------------------------------------------------


def run_install(args: argparse.Namespace) -> int:
    paths = _paths(args)
    target = unit_dir() / f"{args.name}.service"
    if target.exists() and not args.force:
        _err(f"{target} exists; --force replaces it")
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(unit_text(paths.profiles))
    print(f"wrote {target}")
    print("enable and start it with:")
    print("  systemctl --user daemon-reload")
    print(f"  systemctl --user enable --now {args.name}.service")
    print("keep it running after you log out:")
    print("  loginctl enable-linger $USER")
    return 0
