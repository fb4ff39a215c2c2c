"""Snapshot tests of the main screens with fixed data (pytest-textual-snapshot), at the sizes
people use: 80x24 and 120x40.

The tunnel thread is replaced by a host that hands the app a fixed batch of records and
statuses (canned.py), so the pictures depend on nothing but the code. Update them after a
deliberate visual change with: pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from textual.widgets import Input
from textual.widgets._footer import FooterKey

from relay.stats import AppDown
from tests.tui.canned import T0
from tests.tui.drive import wait_for
from tui.screens.details import RequestDetailsScreen
from tui.screens.help import HelpScreen
from tui.screens.profile_form import ProfileFormScreen

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


async def _settle(pilot) -> None:
    await wait_for(pilot, lambda: len(pilot.app.query_one("#log").rows) == 21)
    await _footer_ready(pilot)


async def _footer_ready(pilot) -> None:
    await wait_for(pilot, lambda: pilot.app.screen.query(FooterKey))
    await pilot.pause(0.3)


async def _form_ready(pilot) -> None:
    """The form is up with its footer; its cursor does not blink (a picture cannot)."""
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, ProfileFormScreen))
    await wait_for(pilot, lambda: app.screen.query(FooterKey))
    for field in app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", SIZES)
def test_main_view(snap_compare, canned_app, size):
    assert snap_compare(canned_app, terminal_size=size, run_before=_settle)


@pytest.mark.parametrize("size", SIZES)
def test_all_tunnels(snap_compare, canned_app, size):
    async def select_all(pilot) -> None:
        await _settle(pilot)
        pilot.app.query_one("#sidebar").highlighted = 0
        await pilot.pause(0.2)

    assert snap_compare(canned_app, terminal_size=size, run_before=select_all)


@pytest.mark.parametrize("size", SIZES)
def test_request_details(snap_compare, canned_app, size):
    async def open_details(pilot) -> None:
        await _settle(pilot)
        log = pilot.app.query_one("#log")
        log.focus()
        await pilot.press("home", "down", "down", "down")  # the POST
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, RequestDetailsScreen))
        await _footer_ready(pilot)

    assert snap_compare(canned_app, terminal_size=size, run_before=open_details)


@pytest.mark.parametrize("size", SIZES)
def test_profile_form(snap_compare, canned_app, size):
    async def edit(pilot) -> None:
        await _settle(pilot)
        await pilot.press("e")
        await _form_ready(pilot)

    assert snap_compare(canned_app, terminal_size=size, run_before=edit)


def test_profile_form_with_errors_keeps_its_buttons(snap_compare, canned_app):
    async def new_with_errors(pilot) -> None:
        await _settle(pilot)
        await pilot.press("n")
        await _form_ready(pilot)
        await pilot.press(*"Front", "tab", *"99999", "tab", "ctrl+u", *"a b", "tab", "A")
        await wait_for(pilot, lambda: pilot.app.screen.query_one("#error-subdomain").display)
        await pilot.pause(0.2)

    assert snap_compare(canned_app, terminal_size=(80, 24), run_before=new_with_errors)


def test_paused_and_filtered_log(snap_compare, canned_app):
    async def filter_and_pause(pilot) -> None:
        await _settle(pilot)
        await pilot.press("slash")
        await pilot.pause(0.2)
        await pilot.press(*"/api/items", "enter")
        await pilot.pause(0.2)
        await pilot.press("space")
        await pilot.pause(0.2)

    assert snap_compare(canned_app, terminal_size=(80, 24), run_before=filter_and_pause)


def test_help(snap_compare, canned_app):
    async def help_(pilot) -> None:
        await _settle(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))
        await _footer_ready(pilot)

    assert snap_compare(canned_app, terminal_size=(120, 40), run_before=help_)


def test_error_state_of_a_tunnel(snap_compare, canned_app):
    async def select_backend(pilot) -> None:
        await _settle(pilot)
        pilot.app.query_one("#sidebar").highlighted = 2
        await pilot.pause(0.2)

    assert snap_compare(canned_app, terminal_size=(120, 40), run_before=select_backend)


@pytest.mark.parametrize("size", SIZES)
def test_local_app_down(snap_compare, canned_app, size):
    async def app_goes_down(pilot) -> None:
        await _settle(pilot)
        canned = pilot.app.host._canned
        frontend = canned.statuses["frontend"]
        down = AppDown(
            "local app refused the connection (127.0.0.1:3000)", "refused", T0 + 30, 14, 14
        )
        stats = replace(frontend.stats, app_down=down)
        canned.statuses = {**canned.statuses, "frontend": replace(frontend, stats=stats)}
        await wait_for(pilot, lambda: "refused" in str(pilot.app.query_one("#tunnel-info").content))
        await pilot.pause(0.2)

    assert snap_compare(canned_app, terminal_size=size, run_before=app_goes_down)
