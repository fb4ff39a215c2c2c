"""The dashboard runs a profile's command with its tunnel: its state in the sidebar, `L` shows
its output, `R` restarts it, the form edits it (pilot at 80x24, real relay, real process)."""

from __future__ import annotations

import tomllib

import pytest

from profiles.model import Profile, ProfilesFile
from profiles.store import save
from relay.server import RelaySettings
from runner.output import LOGS_ENV
from tests.apps_run.helpers import alive, app_command, free_port
from tests.tui.drive import make_app, wait_for
from tui.app import MolehillApp
from tui.screens.app_log import AppLogScreen
from tui.screens.profile_form import ProfileFormScreen
from tui.widgets.tunnel_list import TunnelList


@pytest.fixture(autouse=True)
def logs_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv(LOGS_ENV, str(tmp_path / "logs"))


async def test_r_restarts_and_l_shows_the_output_at_80x24(tmp_path):
    port = free_port()
    path = tmp_path / "profiles.toml"
    command = app_command("backend_app.py", port)
    save(ProfilesFile(profiles={"api": Profile("api", port, command=command)}), path)
    app = MolehillApp(path, relay_settings=RelaySettings(http_port=0, agents_port=0))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.host is not None and app.host.embedded is not None)
        await pilot.press("s")
        await wait_for(
            pilot, lambda: app.statuses.get("api") and "app ready" in app.statuses["api"].app
        )
        sidebar = app.query_one(TunnelList)
        await wait_for(pilot, lambda: any("app ready" in str(o.prompt) for o in sidebar._options))
        assert app.apps is not None
        first = app.apps.runner.apps["api"].pid
        await pilot.press("R")
        await wait_for(pilot, lambda: app.apps.runner.apps["api"].pid not in (None, first))
        await pilot.press("L")
        await wait_for(pilot, lambda: isinstance(app.screen, AppLogScreen))
        screen = app.screen
        await wait_for(
            pilot, lambda: "backend listening on" in "\n".join(screen.query_one("#app-log").lines)
        )
        await wait_for(pilot, lambda: "app" in str(screen.query_one("#app-log-state").render()))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, AppLogScreen))
        await pilot.press("x")  # the command stops with its tunnel
        await wait_for(pilot, lambda: "app stopped" in app.statuses["api"].app)
        await pilot.press("s")
        await wait_for(pilot, lambda: "app ready" in app.statuses["api"].app)
        last = app.apps.runner.apps["api"].pid
    assert last is not None and not alive(last)  # quitting the dashboard stopped it


async def test_the_form_edits_the_command_and_keeps_env(tmp_path):
    path = tmp_path / "profiles.toml"
    path.write_text(
        '[profiles.web]\nport = 3000\ncommand = "npm run dev"\nstop_grace = 2\n'
        'env = { API = "{api.url}" }\n[profiles.api]\nport = 8000\n'
    )
    app = make_app(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.loaded is not None)
        app.query_one(TunnelList).select_key("web")
        app.selected = "web"
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ProfileFormScreen))
        field = app.screen.query_one("#field-command")
        assert field.value == "npm run dev"
        field.value = "npm run dev -- --port 3000"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, ProfileFormScreen))
    web = tomllib.loads(path.read_text())["profiles"]["web"]
    assert web["command"] == "npm run dev -- --port 3000"
    assert web["env"] == {"API": "{api.url}"} and web["stop_grace"] == 2
