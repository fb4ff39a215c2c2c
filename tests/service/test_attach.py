"""The dashboard attached to a real service process: it shows the traffic, `q` detaches and
the tunnels keep running, a reopened dashboard shows what came meanwhile, a killed service is
reported at once, and `Q` stops the service."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from inspector import CaptureSettings
from tests.service.support import Setup, service_setup
from tui.app import MolehillApp
from tui.attach import DETACH
from tui.screens.confirm import ConfirmScreen
from tui.service.remote import RemoteHost, attach_if_running
from tui.widgets.key_footer import KeyFooter

pytestmark = pytest.mark.timeout(180)


def _paths(app: MolehillApp, tunnel: str) -> list[str]:
    return [record.path for key, record in app.all_rows if key == tunnel]


async def _until(pilot, predicate, what: str, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await pilot.pause(0.05)
    assert predicate(), what


def _dashboard(setup: Setup, remote: RemoteHost) -> MolehillApp:
    return MolehillApp(setup.profiles, captures=CaptureSettings(), api=None, service=remote)


@pytest.fixture
def in_service_env(tmp_path, monkeypatch):
    """This process (the dashboard) finds the service and the store where the service has them."""
    from tests.service.support import service_env

    for key, value in service_env(tmp_path).items():
        if key.startswith(("XDG_", "MOLEHILL_")) or key == "HOME":
            monkeypatch.setenv(key, value)


async def test_attach_detach_reattach_and_kill(tmp_path, in_service_env):
    async with service_setup(tmp_path) as setup:
        assert (await setup.molehill("service", "start")).code == 0
        await setup.wait_online("web", "api")
        await setup.curl("web", "/echo/before")

        remote = attach_if_running(setup.profiles)
        assert remote is not None
        app = _dashboard(setup, remote)
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await _until(pilot, lambda: "/echo/before" in _paths(app, "web"), "history row")
            await _until(
                pilot,
                lambda: app.statuses.get("web") and app.statuses["web"].state == "online",
                "web online in the sidebar",
            )
            await setup.curl("api", "/echo/live")
            await _until(pilot, lambda: "/echo/live" in _paths(app, "api"), "a live row")
            assert app.active_bindings["q"].binding.description == DETACH
            footer = app.query_one(KeyFooter)
            shown = [getattr(key, "description", "") for key in footer.children]
            assert DETACH in shown  # the footer says the tunnels keep running
            await pilot.press("q")
        assert not remote.lost  # a detach, not a loss

        # Detached: the tunnels keep going, and what comes now goes into the store.
        tunnels = await setup.tunnels()
        assert tunnels["web"]["state"] == "online"
        await setup.curl("web", "/echo/while-away")
        await asyncio.sleep(1.0)  # the service's writer stores in batches

        remote = attach_if_running(setup.profiles)
        assert remote is not None
        app = _dashboard(setup, remote)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await _until(pilot, lambda: "/echo/while-away" in _paths(app, "web"), "meanwhile")
            assert "/echo/before" in _paths(app, "web")
            pid = remote.pid
            os.kill(pid, signal.SIGKILL)
            await _until(pilot, lambda: bool(remote.lost), "the loss noticed", timeout=5)
            await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the restart offer")
            notices = [n.message for n in app._notifications]
            assert any(f"service (pid {pid}) is gone" in n for n in notices)
            await _until(
                pilot,
                lambda: (web := app.statuses.get("web")) is not None and web.state == "error",
                "tunnels shown down",
            )
            await pilot.press("n")
            await pilot.press("q")


async def test_capital_q_stops_the_service(tmp_path, in_service_env):
    async with service_setup(tmp_path) as setup:
        assert (await setup.molehill("service", "start")).code == 0
        await setup.wait_online("web", "api")
        pid = (await setup.status())["pid"]
        remote = attach_if_running(setup.profiles)
        assert remote is not None
        app = _dashboard(setup, remote)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.3)
            await pilot.press("Q")
        async with asyncio.timeout(20):
            while (await setup.molehill("service", "status")).code != 3:
                await asyncio.sleep(0.1)
        from tui.service.pidlock import alive

        async with asyncio.timeout(10):
            while alive(pid):
                await asyncio.sleep(0.1)


def test_no_service_means_no_attach(tmp_path, in_service_env):
    assert attach_if_running(tmp_path / "profiles.toml") is None


async def test_an_edit_made_elsewhere_is_offered_as_a_reload(tmp_path, in_service_env):
    async with service_setup(tmp_path) as setup:
        assert (await setup.molehill("service", "start")).code == 0
        await setup.wait_online("web", "api")
        remote = attach_if_running(setup.profiles)
        assert remote is not None
        app = _dashboard(setup, remote)
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await pilot.pause(0.3)
            setup.profiles.write_text("[profiles.web\n")  # an editor's half-saved file
            await _until(
                pilot,
                lambda: any("left as they are" in n.message for n in app._notifications),
                "the broken file reported",
            )
            assert not isinstance(app.screen, ConfirmScreen)
            setup.write_profiles(
                "[profiles.web]\nport = {web}\nautostart = true\n\n"
                "[profiles.api]\nport = {api}\nautostart = true\n\n"
                "[profiles.docs]\nport = {api}\nautostart = true\n"
            )
            await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the offer")
            await pilot.press("y")
            await _until(
                pilot,
                lambda: any("reloaded: started docs" in n.message for n in app._notifications),
                "the service's outcome",
            )
            assert "docs" in app.loaded.file.profiles  # the sidebar's list, re-read
            tunnels = await setup.wait_online("web", "api", "docs")
            assert tunnels["docs"]["url"]
            await pilot.press("q")
