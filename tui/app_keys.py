"""The dashboard's keys for profiles' commands (R restart, L log), kept out of app.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.hosted import HostedApps
from runner.output import log_path
from tui.screens.app_log import AppLogScreen

if TYPE_CHECKING:
    from tui.app import MolehillApp


def attach_apps(app: MolehillApp) -> HostedApps:
    """Run profiles' commands beside the app's tunnels (call before the host starts)."""
    assert app.host is not None

    def profiles() -> dict:
        return dict(app.loaded.file.profiles) if app.loaded is not None else {}

    return HostedApps(app.host, profiles, app.profiles_path.parent, app._settings)


def _in_service(app: MolehillApp, name: str) -> bool:
    """Attached to a service: it runs the profiles' commands (not controlled from here yet)."""
    if app.apps is None and app.service is not None:
        app.notify(
            f"the service runs {name}'s command; its output: {log_path(name)}", severity="warning"
        )
        return True
    return False


def restart_app(app: MolehillApp) -> None:
    profile = app._selected_profile()
    if profile is None or _in_service(app, profile.name) or app.apps is None:
        return
    problem = app.apps.restart(profile.name)
    app.notify(problem or f"restarting {profile.name}'s command", timeout=3)


def show_app_log(app: MolehillApp) -> None:
    profile = app._selected_profile()
    if profile is None or _in_service(app, profile.name) or app.apps is None:
        return
    app.push_screen(AppLogScreen(profile.name, app.apps))
