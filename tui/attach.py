"""The dashboard attached to a running service: its tunnels, its history, `q` that detaches,
`Q` that stops the service, and a clear word (and an offer) when the service dies."""

from __future__ import annotations

import asyncio
import subprocess
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.screen import ModalScreen

from profiles.errors import ProfilesError
from profiles.store import fingerprint_on_disk, load
from tui.screens.confirm import ConfirmScreen
from tui.service.remote import RemoteHost, attach_if_running
from tui.service.unit import cli_command

if TYPE_CHECKING:
    from tui.app import MolehillApp

DETACH = "Detach: tunnels run on"
FILE_CHECK_EVERY = 2.0  # seconds between looks at the profiles file for edits made elsewhere


def attach(app: MolehillApp, remote: RemoteHost) -> None:
    """Use the service's tunnels; history comes from the store it writes."""
    # RemoteHost has the parts of TunnelHost's interface the dashboard uses.
    app.host = remote  # type: ignore[assignment]
    app.local_api.url = remote.api_url  # the service serves the local API
    app.captures.attached = True
    if app.captures.enabled:
        app._show_history()
    remote.on_lost = lambda why: app.call_from_thread(_lost, app, why)
    app.set_interval(0.5, lambda: _show_refusals(app, remote))
    app.set_interval(FILE_CHECK_EVERY, _FileWatch(app, remote).check)
    # The same key and action, in words that say what quitting means now (bind() would add a
    # second binding behind the first rather than replace it).
    app._bindings.key_to_bindings["q"] = [Binding("q", "quit", DETACH)]
    app.refresh_bindings()
    app._show_relay()
    app.notify(
        f"attached to the molehill service (pid {remote.pid}): q detaches and its tunnels "
        "keep running; Q stops them and quits",
        timeout=8,
    )


def _show_refusals(app: MolehillApp, remote: RemoteHost) -> None:
    """Requests the service turned down (a start of a profile it cannot find...), and why;
    records the dashboard read too slowly to get."""
    for note in remote.notes():
        app.notify(note, timeout=8)
    for problem in remote.problems():
        app.notify(f"the service: {problem}", severity="error", timeout=8)
    if dropped := remote.take_dropped():
        app.notify(
            f"{dropped} requests are not in the log (the dashboard fell behind); "
            "`molehill requests` lists them",
            severity="warning",
        )


class _FileWatch:
    """The profiles file changed elsewhere (an editor): offer the service a reload, once per
    version. A file that does not parse is reported once; the tunnels are left as they are."""

    def __init__(self, app: MolehillApp, remote: RemoteHost) -> None:
        self.app = app
        self.remote = remote
        self.offered: object = None  # the version of the file already offered

    def check(self) -> None:
        app = self.app
        if app.loaded is None or self.remote.lost or isinstance(app.screen, ModalScreen):
            return
        try:
            on_disk: object = fingerprint_on_disk(app.profiles_path)
        except ProfilesError as exc:
            on_disk = str(exc)  # unreadable: said once, like any version
        if on_disk == app.loaded.fingerprint or on_disk == self.offered:
            return
        self.offered = on_disk
        try:
            load(app.profiles_path)
        except ProfilesError as exc:
            app.notify(f"{exc}; the running tunnels are left as they are", severity="error")
            return
        app.push_screen(
            ConfirmScreen(
                f"{app.profiles_path.name} changed on disk. Reload it? Unchanged tunnels keep "
                "running; changed ones restart.",
                "Reload",
                "Not now",
            ),
            self._answer,
        )

    def _answer(self, yes: bool | None) -> None:
        if yes and self.app._load_profiles():
            self.remote.reload()


def quit_all(app: MolehillApp) -> None:
    """`Q`: the service stops its tunnels and exits; the dashboard closes."""
    if isinstance(app.host, RemoteHost) and not app.host.lost:
        app.host.shut_down_service()
    app.exit()


def _lost(app: MolehillApp, why: str) -> None:
    if not app.is_running:
        return
    pid = app.host.pid if isinstance(app.host, RemoteHost) else "?"
    app.notify(
        f"the molehill service (pid {pid}) is gone ({why}): its tunnels are down",
        severity="error",
        timeout=30,
    )

    def answer(yes: bool | None) -> None:
        if yes:
            app.run_worker(_restart(app), group="service")

    app.push_screen(
        ConfirmScreen("The molehill service stopped. Start it again?", "Start", "Not now"), answer
    )


async def _restart(app: MolehillApp) -> None:
    command = [*cli_command(app.profiles_path), "service", "start"]
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True)
    if done.returncode != 0:
        app.notify(f"the service did not start: {done.stderr.strip()}", severity="error")
        return
    remote = await asyncio.to_thread(attach_if_running, app.profiles_path)
    if remote is None:
        app.notify("the service started but does not answer", severity="error")
        return
    attach(app, remote)
