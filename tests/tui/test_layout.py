"""The dashboard fits the terminals people use, 80x24 and 120x40: the log keeps its path, the
footer its help and quit keys, the profile form its buttons."""

from __future__ import annotations

import pytest
from textual.widgets._footer import FooterKey

from tests.tui.drive import canned_ready, visible_lines, wait_for
from tui.screens.profile_form import ProfileFormScreen
from tui.widgets.request_log import MIN_PATH, RequestLog, layout

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


def footer_keys(app) -> list[FooterKey]:
    return list(app.screen.query(FooterKey))


def shows_keys(app, keys: set[str]):
    """A condition: the footer shows these keys, and every key it shows is whole on screen.
    (It recomposes after focus or size changes, so tests wait for it.)"""

    def check() -> bool:
        shown = footer_keys(app)
        return keys <= {k.key for k in shown} and all(fully_on_screen(app, k) for k in shown)

    return check


def fully_on_screen(app, widget) -> bool:
    region = widget.region
    width, height = app.size
    return bool(region) and region.right <= width and region.bottom <= height


@pytest.mark.parametrize("size", SIZES)
async def test_the_log_shows_every_essential_column_and_whole_paths(canned_app, size):
    async with canned_app.run_test(size=size) as pilot:
        await canned_ready(pilot)
        log = canned_app.query_one(RequestLog)
        lines = visible_lines(log)
        titles = lines[0].split()
        assert titles[:4] == ["TIME", "METHOD", "STATUS", "DURATION"] and titles[-1] == "PATH"
        assert any(line.endswith(" /assets/app.js") for line in lines[1:])
        assert canned_app.query_one("#sidebar").region.width <= size[0] // 3


@pytest.mark.parametrize("size", SIZES)
async def test_the_merged_view_keeps_room_for_the_path(canned_app, size):
    async with canned_app.run_test(size=size) as pilot:
        await canned_ready(pilot)
        canned_app.query_one("#sidebar").highlighted = 0
        log = canned_app.query_one(RequestLog)
        await wait_for(pilot, lambda: log.show_tunnel)
        await pilot.pause(0.1)
        header = visible_lines(log)[0]
        assert "TUNNEL" in header.split()
        path_width = log.scrollable_content_region.width - header.index("PATH")
        assert path_width >= (MIN_PATH if size[0] >= 120 else 12)


@pytest.mark.parametrize("size", SIZES)
async def test_help_and_quit_keys_always_show_whole(canned_app, size):
    async with canned_app.run_test(size=size) as pilot:
        await canned_ready(pilot)
        for focus in ("#sidebar", "#log"):
            canned_app.query_one(focus).focus()
            essential = {"question_mark", "q", "s", "slash", "space"}
            if focus == "#log":
                essential.add("enter")  # details of the highlighted request
            await wait_for(pilot, shows_keys(canned_app, essential))


async def test_the_footer_recomputes_its_keys_when_the_terminal_grows(canned_app):
    async with canned_app.run_test(size=(80, 24)) as pilot:
        await canned_ready(pilot)
        assert "c" not in {k.key for k in footer_keys(canned_app)}
        await pilot.resize_terminal(140, 40)
        await wait_for(pilot, shows_keys(canned_app, {"c", "d", "question_mark", "q"}))


@pytest.mark.parametrize("size", SIZES)
async def test_the_profile_form_fits_with_its_buttons_and_keys(canned_app, size):
    async with canned_app.run_test(size=size) as pilot:
        await canned_ready(pilot)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(canned_app.screen, ProfileFormScreen))
        # Every field wrong: seven error messages, and the buttons must still be on screen.
        await pilot.press(*"Front", "tab", *"99999", "tab", "ctrl+u", *"a b", "tab", "A")
        await pilot.press("tab", "x", "tab", *"1.2.3", "tab", *"nope")
        screen = canned_app.screen
        await wait_for(pilot, lambda: sum(e.display for e in screen.query(".field-error")) >= 6)
        await wait_for(pilot, shows_keys(canned_app, {"ctrl+s", "escape"}))
        footer_row = size[1] - 1
        for button in ("#save", "#cancel"):
            widget = screen.query_one(button)
            assert fully_on_screen(canned_app, widget)
            assert widget.region.bottom <= footer_row
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(canned_app.screen, ProfileFormScreen))


async def test_t_hides_the_sidebar_to_give_the_log_the_width(canned_app):
    async with canned_app.run_test(size=(80, 24)) as pilot:
        await canned_ready(pilot)
        log = canned_app.query_one(RequestLog)
        narrow = log.scrollable_content_region.width
        await pilot.press("t")
        await wait_for(pilot, lambda: log.scrollable_content_region.width > narrow + 15)
        assert not canned_app.query_one("#sidebar").display
        assert canned_app.focused is log
        assert log.scrollable_content_region.width > narrow + 15
        assert "SIZE" in visible_lines(log)[0].split()
        await pilot.press("t")
        await wait_for(pilot, lambda: log.scrollable_content_region.width == narrow)
        assert canned_app.query_one("#sidebar").display


def test_layout_drops_client_then_size_before_squeezing_the_path():
    def titles(width, tunnel=None):
        columns, path = layout(width, tunnel)
        return [c.title for c in columns], path

    essential = ["TIME", "METHOD", "STATUS", "DURATION"]
    assert titles(53) == (essential, 53 - 33)
    assert titles(90)[0] == [*essential, "SIZE", "CLIENT"]
    assert titles(70)[0] == [*essential, "SIZE"]
    columns, path = titles(40, tunnel=8)
    assert columns == ["TIME", "TUNNEL", "METHOD", "STATUS", "DURATION"] and path >= 1
    for width in range(34, 200):
        assert titles(width)[1] >= min(MIN_PATH, width - 33)
