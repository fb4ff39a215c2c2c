"""`molehill` with no command, and `molehill demo`: open the full-screen dashboard."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from profiles.model import Profile, ProfilesFile
from profiles.paths import resolve_profiles_path
from profiles.store import save
from tui.captures import add_capture_option
from tui.local_api import add_api_options, api_options


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="open the dashboard with two demo apps and light traffic (touches no files)",
        description=(
            "Start an embedded relay, a demo frontend and API with a websocket, tunnels to both "
            "and light traffic, and open the dashboard. Your own profiles file is not used."
        ),
    )
    demo.set_defaults(run=run_demo)


def add_dashboard_options(parser: argparse.ArgumentParser) -> None:
    """The dashboard's own options (`molehill` with no command): captures and the local API."""
    add_capture_option(parser, top_level=True)
    add_api_options(parser, secrets=False, top_level=True)  # webhook secrets come from the profiles
    parser.add_argument(
        "--service",
        action="store_true",
        help="dashboard: start the background service for the profiles file if none runs, and "
        "attach to it (the tunnels then outlive the dashboard; see `molehill service`); "
        "MOLEHILL_SERVICE=1 in the environment makes it the default",
    )


def run_dashboard(args: argparse.Namespace) -> int:
    """The main job: the dashboard on the user's profiles file."""
    path = resolve_profiles_path(getattr(args, "profiles_path", None))
    if not sys.stdin.isatty() or not sys.stdout.isatty():
        print(
            "molehill: the dashboard needs a terminal; for headless tunnels use "
            "`molehill http PORT` or `molehill start NAME`",
            file=sys.stderr,
        )
        return 2
    from inspector import CaptureSettings
    from relay.agent import DEFAULT_RELAY
    from tui.app import MolehillApp  # Textual loads only for the dashboard
    from tui.service.remote import attach_if_running

    service = attach_if_running(path)  # a running service holds the tunnels: attach to it
    if service is None and (getattr(args, "service", False) or _service_by_default()):
        from tui.commands.service import run_start

        if run_start(args) != 0:
            return 1
        service = attach_if_running(path)

    # With no [relay] in the profiles file, a `molehill relay` already running on the default
    # ports is used (recognised by its /healthz answer) rather than a second, embedded one.
    MolehillApp(
        path,
        ring_size=max(100, args.log_size),
        capture_bytes=max(0, args.capture_bytes),
        look_for_relay=DEFAULT_RELAY,
        captures=None if getattr(args, "no_capture", False) else CaptureSettings(),
        api=api_options(args) if hasattr(args, "no_api") else None,
        service=service,
    ).run()
    return 0


def _service_by_default() -> bool:
    """MOLEHILL_SERVICE=1 (a shell profile's setting): `molehill` always uses the service."""
    return os.environ.get("MOLEHILL_SERVICE", "").strip().lower() in ("1", "true", "yes", "on")


def run_demo(args: argparse.Namespace) -> int:
    from relay.host import TunnelHost
    from tui.app import MolehillApp
    from tui.demo import DemoServices

    services = DemoServices(api_name="api")
    services.start()
    folder = Path(tempfile.mkdtemp(prefix="molehill-demo-"))
    path = folder / "profiles.toml"
    demo_profiles = ProfilesFile(
        profiles={
            "frontend": Profile("frontend", services.frontend_port, autostart=True),
            "api": Profile("api", services.api_port, autostart=True),
        }
    )
    save(demo_profiles, path)

    def send_traffic_to(host: TunnelHost) -> None:
        if host.embedded is not None:
            services.relay_port = host.embedded.http_port

    try:
        MolehillApp(path, on_host_started=send_traffic_to).run()
    finally:
        services.stop()
    return 0
