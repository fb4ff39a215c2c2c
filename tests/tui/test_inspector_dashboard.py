"""The dashboard meets the inspector: its tunnels fill the capture store, history shows on open,
the filter language, replay / edit / diff in the details screen, and the local API."""

from __future__ import annotations

import json

import httpx
import pytest
from textual.widgets import Input, Static, TextArea

from inspector import CaptureSettings, open_store
from profiles.model import Profile, ProfilesFile
from profiles.store import save
from tests.tui.drive import make_app, wait_for, wait_online
from tui.local_api import ApiOptions
from tui.log_records import StoredRecord
from tui.screens.details import RequestDetailsScreen
from tui.screens.diff import DiffScreen
from tui.screens.edit import EditRequestScreen
from tui.screens.filter import FilterScreen
from tui.widgets.request_log import LogFilter, RequestLog

SIZES = [(80, 24), (120, 40)]
SECRET = "Bearer sekrit-token-123456"


def profiles(tmp_path, file: str = "profiles.toml", **entries: Profile):
    path = tmp_path / file
    save(ProfilesFile(profiles=entries), path)
    return path


async def send(app, name: str, *requests: tuple[str, str, dict]) -> None:
    port = app.host.embedded.http_port
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for method, path, headers in requests:
            headers = {"Host": f"{name}.localhost:{port}", **headers}
            await client.request(method, path, headers=headers)


def stored(settings: CaptureSettings, tunnel: str | None = None):
    with open_store(settings) as store:
        return store.select(tunnel=tunnel, newest_first=False, full=True)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_capture_filter_replay_edit_diff_and_api(tmp_path, app_port, size):
    settings = CaptureSettings(path=tmp_path / "captures.sqlite3")
    path = profiles(tmp_path, web=Profile("web", app_port, autostart=True))
    app = make_app(path, captures=settings, api=ApiOptions(port=0))
    async with app.run_test(size=size) as pilot:
        await wait_online(pilot, app, "web")
        await send(app, "web", ("GET", "/echo/a", {"Authorization": SECRET}))
        await send(app, "web", ("GET", "/status/500", {}))
        log = app.query_one(RequestLog)
        await wait_for(pilot, lambda: len(log.rows) == 2)

        # Every exchange is in the store, under the profile's name, its secret redacted.
        assert app.captures.writer is not None and app.captures.writer.flush()
        rows = stored(settings, "web")
        assert [e.path for e in rows] == ["/echo/a", "/status/500"]
        assert rows[0].request_header("authorization") == "[redacted]"
        assert SECRET.encode() not in settings.file.read_bytes()

        # The local API answers with the profile's public URL.
        await wait_for(pilot, lambda: bool(app.local_api.url))
        assert app.local_api.url in str(app.query_one("#relay-bar", Static).render())
        async with httpx.AsyncClient() as client:
            answer = (await client.get(f"{app.local_api.url}/api/tunnels")).json()
            listed = (await client.get(f"{app.local_api.url}/api/requests/http")).json()
        assert {r["uri"].rsplit("/", 1)[-1] for r in listed["requests"]} == {
            str(e.id) for e in rows
        }
        assert [(t["name"], t["public_url"]) for t in answer["tunnels"]] == [
            ("web", app.statuses["web"].url)
        ]

        # The filter language: status:5xx keeps the 500; a bad term is pointed at.
        log.focus()
        await pilot.press("slash")
        await wait_for(pilot, lambda: isinstance(app.screen, FilterScreen))
        app.screen.query_one("#filter-query", Input).value = "status:5xx"
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, FilterScreen))
        assert [r.path for _, r in log.rows] == ["/status/500"]
        await pilot.press("slash")
        await wait_for(pilot, lambda: isinstance(app.screen, FilterScreen))
        app.screen.query_one("#filter-query", Input).value = "status:5xx dur:fast"
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert isinstance(app.screen, FilterScreen)  # stays open with the error
        error = app.screen.query_one("#filter-error", Static)
        assert error.display
        shown = str(error.render())
        assert "column 12 ('dur:fast')" in shown and "^^^^^^^^" in shown
        await pilot.press("escape")
        log.filter = LogFilter()
        log.replace(app._rows())

        # r: the app gets the request again, with the original Authorization (in-process).
        log.focus()
        await pilot.press("home", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RequestDetailsScreen))
        await pilot.press("r")
        await wait_for(pilot, lambda: len(app.logs["web"]) == 3)
        replay = app.logs["web"][-1][1]
        assert isinstance(replay, StoredRecord) and replay.original is app.logs["web"][0][1]
        echoed = json.loads(replay.capture.response_body)
        assert ["Authorization", SECRET] in echoed["headers"]
        assert app.captures.writer.flush()
        rows = stored(settings, "web")
        assert len(rows) == 3 and rows[2].replay_of == rows[0].id

        # e: edit method and a header; the app sees both.
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditRequestScreen))
        area = app.screen.query_one(TextArea)
        area.text = area.text.replace("GET /echo/a", "PUT /echo/a", 1).replace(
            "\n\n", "\nX-Edited: yes\n\n", 1
        )
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: len(app.logs["web"]) == 4)
        edited = json.loads(app.logs["web"][-1][1].capture.response_body)
        assert edited["method"] == "PUT" and ["X-Edited", "yes"] in edited["headers"]

        # d: the diff of the original's answer and the latest replay's: a JSON path changed.
        assert isinstance(app.screen, RequestDetailsScreen)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen))
        lines = app.screen.diff.lines()
        assert "  ~ method: 'GET' -> 'PUT'" in lines
        await pilot.press("escape", "escape")


async def test_history_shows_when_the_dashboard_opens_again(tmp_path, app_port):
    settings = CaptureSettings(path=tmp_path / "captures.sqlite3")
    path = profiles(tmp_path, web=Profile("web", app_port, autostart=True))
    app = make_app(path, captures=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_online(pilot, app, "web")
        await send(app, "web", *[("GET", f"/echo/{i}", {}) for i in range(3)])
        await wait_for(pilot, lambda: len(app.query_one(RequestLog).rows) == 3)
    # Quit (the writer stores what is queued), then open again without starting the tunnel.
    path = profiles(tmp_path, "again.toml", web=Profile("web", app_port))
    again = make_app(path, captures=settings, ring_size=100)
    async with again.run_test(size=(80, 24)) as pilot:
        log = again.query_one(RequestLog)
        await wait_for(pilot, lambda: len(log.rows) == 3)
        assert [r.path for _, r in log.rows] == ["/echo/0", "/echo/1", "/echo/2"]
        assert all(isinstance(r, StoredRecord) and r.history for _, r in log.rows)
        assert "history" in str(log.border_title)
        log.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(again.screen, RequestDetailsScreen))
        assert again.screen.record.capture is not None
        assert b"/echo/2" in again.screen.record.capture.response_body


async def test_no_capture_and_capture_false_keep_nothing(tmp_path, app_port):
    settings = CaptureSettings(path=tmp_path / "captures.sqlite3")
    path = profiles(
        tmp_path,
        kept=Profile("kept", app_port, autostart=True),
        quiet=Profile("quiet", app_port, autostart=True, capture=False),
    )
    app = make_app(path, captures=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_online(pilot, app, "kept", "quiet")
        await send(app, "quiet", ("GET", "/echo/q", {}))
        await send(app, "kept", ("GET", "/echo/k", {}))
        await wait_for(pilot, lambda: len(app.all_rows) == 2)
        assert app.captures.writer is not None and app.captures.writer.flush()
    assert [e.tunnel for e in stored(settings)] == ["kept"]

    off = CaptureSettings(path=tmp_path / "never.sqlite3")
    app = make_app(path)  # what `molehill --no-capture` passes: no capture settings
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_online(pilot, app, "kept")
        await send(app, "kept", ("GET", "/echo/k", {}))
        await wait_for(pilot, lambda: len(app.all_rows) == 1)
        assert app.captures.writer is None
    assert not off.file.exists()


async def test_a_store_that_cannot_be_opened_is_said_and_tunnels_run(tmp_path, app_port):
    bad = tmp_path / "captures.sqlite3"
    bad.write_bytes(b"this is not a database" * 100)
    settings = CaptureSettings(path=bad)
    path = profiles(tmp_path, web=Profile("web", app_port, autostart=True))
    app = make_app(path, captures=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        notices = [n.message for n in app._notifications]
        assert any("request history is off" in m and str(bad) in m for m in notices)
        await wait_online(pilot, app, "web")
        await send(app, "web", ("GET", "/echo/x", {}))
        await wait_for(pilot, lambda: len(app.all_rows) == 1)
    assert bad.read_bytes() == b"this is not a database" * 100
