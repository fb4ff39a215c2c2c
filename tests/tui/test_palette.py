"""The command palette lists every dashboard command and each one runs its action."""

from __future__ import annotations

import pytest
from textual.command import CommandPalette

from tests.tui.drive import canned_ready, wait_for
from tui.dashboard_keys import PALETTE
from tui.widgets.request_log import RequestLog

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.mark.parametrize("size", SIZES)
async def test_every_palette_entry_is_offered_and_bound_to_its_action(canned_app, size):
    async with canned_app.run_test(size=size) as pilot:
        await canned_ready(pilot)
        offered = {c.title: c for c in canned_app.get_system_commands(canned_app.screen)}
        for title, _help, action in PALETTE:
            command = offered[title]
            assert command.callback == getattr(canned_app, f"action_{action}"), title
        assert "Quit" in offered and "Theme" in offered  # Textual's own entries are kept


@pytest.mark.parametrize("size", SIZES)
async def test_choosing_pause_in_the_palette_pauses_the_log(canned_app, size):
    async with canned_app.run_test(size=size) as pilot:
        await canned_ready(pilot)
        log = canned_app.query_one(RequestLog)
        assert not log.paused
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(canned_app.screen, CommandPalette))
        await pilot.press(*"Pause")  # no space: the log's own pause key must not do it
        await pilot.pause(0.3)  # the palette searches in a worker
        await pilot.press("enter")
        await wait_for(pilot, lambda: log.paused)
        assert not isinstance(canned_app.screen, CommandPalette)
