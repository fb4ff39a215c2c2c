"""The request log follows new rows like ``tail -f``: driven by the pilot, with real requests
through a real tunnel (embedded relay, local app), at the sizes people use."""

from __future__ import annotations

import pytest
from textual import events

from profiles.model import Profile, ProfilesFile
from profiles.store import save
from tests.tui.drive import burst, make_app, shows_path, visible_lines, wait_for, wait_online
from tui.screens.confirm import ConfirmScreen
from tui.screens.filter import FilterScreen
from tui.widgets.request_log import RequestLog

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


def wheel(log: RequestLog, direction: str) -> None:
    """One notch of the mouse wheel over the log."""
    event = events.MouseScrollUp if direction == "up" else events.MouseScrollDown
    log.post_message(event(log, 5, 5, 0, 0, 0, False, False, False))


def newest_shown(log: RequestLog) -> bool:
    """The last row is drawn, at the bottom of the view."""
    return bool(log.rows) and shows_path(log, log.rows[-1][1].path)


async def _web_app(tmp_path, app_port, *names):
    path = tmp_path / "profiles.toml"
    profiles = {n: Profile(n, app_port, autostart=True) for n in names or ("web",)}
    save(ProfilesFile(profiles=profiles), path)
    return make_app(path)


@pytest.mark.parametrize("size", SIZES)
async def test_a_burst_shows_its_newest_row_without_more_traffic(tmp_path, app_port, size):
    app = await _web_app(tmp_path, app_port)
    async with app.run_test(size=size) as pilot:
        await wait_online(pilot, app, "web")
        log = app.query_one(RequestLog)
        await burst(app, "web", [f"/echo/burst-{i}" for i in range(26)])
        await wait_for(pilot, lambda: len(log.rows) == 26)
        # Nothing else arrives: the newest row must come into view by itself.
        await wait_for(pilot, lambda: newest_shown(log), timeout=3)
        assert log.scroll_offset.y == log.max_scroll_y
        assert not shows_path(log, log.rows[0][1].path)  # more rows than the view holds
        # A second burst is followed too.
        await burst(app, "web", [f"/echo/more-{i}" for i in range(26)])
        await wait_for(pilot, lambda: len(log.rows) == 52)
        await wait_for(pilot, lambda: newest_shown(log), timeout=3)


async def test_scrolled_up_stays_put_then_end_follows_again(tmp_path, app_port):
    app = await _web_app(tmp_path, app_port)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_online(pilot, app, "web")
        log = app.query_one(RequestLog)
        await burst(app, "web", [f"/echo/a-{i}" for i in range(30)])
        await wait_for(pilot, lambda: len(log.rows) == 30 and newest_shown(log))
        wheel(log, "down")  # at the bottom already: still following
        await pilot.pause(0.2)
        assert log.following
        for _ in range(30):
            wheel(log, "up")
        await wait_for(pilot, lambda: log.scroll_offset.y == 0)
        first = log.rows[0][1].path
        assert shows_path(log, first) and not log.following
        await burst(app, "web", [f"/echo/b-{i}" for i in range(10)])
        await wait_for(pilot, lambda: len(log.rows) == 40)
        await pilot.pause(0.3)
        assert shows_path(log, first) and not newest_shown(log)  # the view did not move
        log.focus()
        await pilot.press("end")
        await wait_for(pilot, lambda: newest_shown(log), timeout=3)
        assert log.following


@pytest.mark.parametrize("size", SIZES)
async def test_leaving_a_filter_returns_to_the_newest_row(tmp_path, app_port, size):
    app = await _web_app(tmp_path, app_port)
    async with app.run_test(size=size) as pilot:
        await wait_online(pilot, app, "web")
        log = app.query_one(RequestLog)
        await burst(app, "web", [f"/echo/x-{i}" for i in range(40)])
        await wait_for(pilot, lambda: len(log.rows) == 40 and newest_shown(log))
        await pilot.press("slash")
        await wait_for(pilot, lambda: isinstance(app.screen, FilterScreen))
        await pilot.press(*"x-1", "enter")  # x-1 and x-10..x-19
        await wait_for(pilot, lambda: len(log.rows) == 11)
        assert "filter: path ~ 'x-1'" in str(log.border_title)
        await pilot.press("slash")
        await wait_for(pilot, lambda: isinstance(app.screen, FilterScreen))
        await pilot.click("#clear")
        await wait_for(pilot, lambda: len(log.rows) == 40)
        await wait_for(pilot, lambda: newest_shown(log), timeout=3)
        assert "filter" not in str(log.border_title)


@pytest.mark.parametrize("size", SIZES)
async def test_unpausing_returns_to_the_newest_row(tmp_path, app_port, size):
    app = await _web_app(tmp_path, app_port)
    async with app.run_test(size=size) as pilot:
        await wait_online(pilot, app, "web")
        log = app.query_one(RequestLog)
        await burst(app, "web", [f"/echo/p-{i}" for i in range(5)])
        await wait_for(pilot, lambda: len(log.rows) == 5)
        await pilot.press("space")
        await burst(app, "web", [f"/echo/q-{i}" for i in range(35)])
        await wait_for(pilot, lambda: log.missed == 35)
        assert "paused, 35 new" in str(log.border_title)
        assert len(log.rows) == 5  # frozen while paused
        await pilot.press("space")
        await wait_for(pilot, lambda: len(log.rows) == 40)
        await wait_for(pilot, lambda: newest_shown(log), timeout=3)
        assert "paused" not in str(log.border_title)


@pytest.mark.parametrize("size", SIZES)
async def test_deleting_a_profile_shows_the_next_log_from_its_newest_row(tmp_path, app_port, size):
    app = await _web_app(tmp_path, app_port, "api", "web")
    async with app.run_test(size=size) as pilot:
        await wait_online(pilot, app, "api", "web")
        log = app.query_one(RequestLog)
        await burst(app, "api", [f"/echo/api-{i}" for i in range(40)])
        await burst(app, "web", ["/echo/web-0"])
        await wait_for(pilot, lambda: len(app.logs.get("api", ())) == 40 and "web" in app.logs)
        app.query_one("#sidebar").highlighted = 2  # web: one row
        await wait_for(pilot, lambda: app.selected == "web" and len(log.rows) == 1)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.selected == "api" and len(log.rows) == 40)
        await wait_for(pilot, lambda: newest_shown(log), timeout=3)
        assert visible_lines(log)[0].startswith("TIME")
