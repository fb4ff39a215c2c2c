"""The dashboard driven by Textual's pilot against a real embedded relay and a real local app."""

from __future__ import annotations

import tomllib

import httpx

from profiles.model import Profile, ProfilesFile
from profiles.store import save
from tests.tui.drive import make_app, wait_for
from tui.screens.details import RequestDetailsScreen
from tui.screens.file_error import ProfilesErrorScreen
from tui.screens.profile_form import ProfileFormScreen
from tui.widgets.request_log import RequestLog

SIZE = (140, 40)


async def test_start_profile_send_requests_and_see_them(tmp_path, app_port):
    path = tmp_path / "profiles.toml"
    save(ProfilesFile(profiles={"web": Profile("web", app_port)}), path)
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.host is not None and app.host.embedded is not None)
        assert app.selected == "web"
        await pilot.press("s")
        await wait_for(
            pilot, lambda: app.statuses.get("web") and app.statuses["web"].state == "online"
        )
        port = app.host.embedded.http_port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for i in range(5):
                r = await client.get(f"/echo/{i}", headers={"Host": f"web.localhost:{port}"})
                assert r.status_code == 200
            r = await client.post(
                "/echo/json", json={"hello": "dashboard"}, headers={"Host": f"web.localhost:{port}"}
            )
        log = app.query_one(RequestLog)
        await wait_for(pilot, lambda: len(log.rows) == 6)
        assert [r.path for _, r in log.rows][:2] == ["/echo/0", "/echo/1"]
        await wait_for(pilot, lambda: app.statuses["web"].stats.total_requests == 6)
        stats = app.statuses["web"].stats
        assert stats.p50 is not None and stats.p99 >= stats.p50 > 0
        assert stats.error_rate == 0.0
        # Open the newest request's details: the JSON body the app sent back is shown.
        log.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RequestDetailsScreen))
        screen = app.screen
        assert screen.record.method == "POST"
        assert screen.record.capture is not None
        assert b"dashboard" in screen.record.capture.request_body
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, RequestDetailsScreen))
        await pilot.press("x")
        await wait_for(pilot, lambda: app.statuses["web"].state == "stopped")


async def test_local_app_down_shows_error_while_others_run(tmp_path, app_port):
    path = tmp_path / "profiles.toml"
    # Two profiles cannot share a public name in one file: the clash comes from a second agent.
    save(ProfilesFile(profiles={"good": Profile("good", app_port, autostart=True)}), path)
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot, lambda: "good" in app.statuses and app.statuses["good"].state == "online"
        )
        app.host.start_tunnel("thief", _settings(app_port, "good"))
        await wait_for(
            pilot, lambda: "thief" in app.statuses and app.statuses["thief"].state == "error"
        )
        assert "in use" in app.statuses["thief"].error
        assert app.statuses["good"].state == "online"


def _settings(port, name):
    from relay.agent import AgentSettings

    return AgentSettings(local_port=port, name=name, relay="")


async def test_add_edit_delete_profile_through_forms(tmp_path):
    path = tmp_path / "profiles.toml"
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "No profiles yet" in info_text(app))
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ProfileFormScreen))
        await pilot.press(*"Front")  # uppercase is not a valid name
        await pilot.pause()
        error = app.screen.query_one("#error-name").render()
        assert "lowercase" in str(error) or "not" in str(error)
        assert app.screen.query_one("#save").disabled
        await pilot.press("backspace", "backspace", "backspace", "backspace", "backspace")
        await pilot.press(*"frontend", "tab", *"3000")
        await pilot.pause()
        assert not app.screen.query_one("#save").disabled
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, ProfileFormScreen))
        data = tomllib.loads(path.read_text())
        assert data["profiles"]["frontend"]["port"] == 3000
        await wait_for(pilot, lambda: "No profiles yet" not in info_text(app))
        # Edit: change the port.
        await wait_for(pilot, lambda: app.selected == "frontend" or _select(app, "frontend"))
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ProfileFormScreen))
        port_input = app.screen.query_one("#field-port")
        port_input.value = "3001"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, ProfileFormScreen))
        assert tomllib.loads(path.read_text())["profiles"]["frontend"]["port"] == 3001
        assert (tmp_path / "profiles.toml.bak").exists()
        # Delete, confirming.
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(
            pilot, lambda: "frontend" not in tomllib.loads(path.read_text()).get("profiles", {})
        )
        await wait_for(pilot, lambda: "No profiles yet" in info_text(app))


def info_text(app) -> str:
    """What the line above the request log says."""
    return str(app.query_one("#tunnel-info").render())


def _select(app, name) -> bool:
    app.query_one("#sidebar").highlighted = [
        o.id for o in app.query_one("#sidebar")._options
    ].index(name)
    return app.selected == name


async def test_broken_profiles_file_opens_an_error_screen_and_is_not_touched(tmp_path):
    path = tmp_path / "profiles.toml"
    path.write_text("[profiles.web]\nport = \n")
    before = path.read_bytes()
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ProfilesErrorScreen))
        assert "profiles.toml:2:8" in app.screen.message
        assert path.read_bytes() == before  # a broken file is never rewritten
        # Fix it, reload: the dashboard appears.
        path.write_text("[profiles.web]\nport = 3000\n")
        await pilot.press("r")
        await wait_for(pilot, lambda: not isinstance(app.screen, ProfilesErrorScreen))
        await wait_for(pilot, lambda: app.host is not None)
        assert app.loaded is not None and app.loaded.file.get("web").port == 3000


async def test_editing_keeps_what_the_form_does_not_show(tmp_path):
    """An https target, its local_insecure, webhook secrets and host_header survive an edit."""
    path = tmp_path / "profiles.toml"
    path.write_text(
        "[profiles.api]\n"
        'target = "https://localhost:8443"\n'
        "local_insecure = true\n"
        'host_header = "api.internal"\n'
        "[profiles.api.webhook_secrets]\n"
        'stripe = "env:STRIPE_WEBHOOK_SECRET"\n'
    )
    app = make_app(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.selected == "api" or _select(app, "api"))
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ProfileFormScreen))
        assert app.screen.query_one("#field-port").value == "8443"
        app.screen.query_one("#field-port").value = "9443"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, ProfileFormScreen))
    saved = tomllib.loads(path.read_text())["profiles"]["api"]
    assert saved["target"] == "https://localhost:9443"
    assert "port" not in saved and "host" not in saved
    assert saved["local_insecure"] is True
    assert saved["host_header"] == "api.internal"
    assert saved["webhook_secrets"] == {"stripe": "env:STRIPE_WEBHOOK_SECRET"}
