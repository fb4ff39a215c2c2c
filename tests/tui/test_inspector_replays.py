"""Replays from the dashboard at their edges: a body the log cut, a history row (the stored,
redacted copy, chunked), an edit that does not parse, and the profile's capture key."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest
from textual.widgets import Static, TextArea

from inspector import CaptureSettings
from inspector.model import payload
from profiles.errors import InvalidProfiles
from profiles.model import Profile, ProfilesFile
from tests.tui.drive import make_app, wait_for, wait_online
from tests.tui.test_inspector_dashboard import profiles
from tui.screens.details import RequestDetailsScreen
from tui.screens.edit import EditRequestScreen
from tui.widgets.request_log import RequestLog

BIG = bytes(range(256)) * 800  # 200 KiB: more than the log keeps of a body (64 KiB)


async def open_details(pilot, app, index: int = 0) -> RequestDetailsScreen:
    log = app.query_one(RequestLog)
    log.focus()
    log.cursor = index
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, RequestDetailsScreen))
    return app.screen


async def test_a_body_the_log_cut_is_replayed_whole_from_the_writer(tmp_path, app_port):
    settings = CaptureSettings(path=tmp_path / "captures.sqlite3")
    path = profiles(tmp_path, web=Profile("web", app_port, autostart=True))
    app = make_app(path, captures=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_online(pilot, app, "web")
        port = app.host.embedded.http_port
        async with httpx.AsyncClient() as client:
            await client.post(
                f"http://127.0.0.1:{port}/echo/big",
                content=BIG,
                headers={"Host": f"web.localhost:{port}"},
            )
        await wait_for(pilot, lambda: len(app.all_rows) == 1)
        record = app.all_rows[0][1]
        assert record.capture.request_truncated and len(record.capture.request_body) == 64 * 1024
        await open_details(pilot, app)
        await pilot.press("r")
        await wait_for(pilot, lambda: len(app.all_rows) == 2)
        echoed = json.loads(app.all_rows[1][1].capture.response_body)
        assert echoed["length"] == len(BIG)
        assert echoed["sha256"] == hashlib.sha256(BIG).hexdigest()


async def test_a_history_row_replays_the_stored_copy(tmp_path, app_port):
    settings = CaptureSettings(path=tmp_path / "captures.sqlite3")
    path = profiles(tmp_path, web=Profile("web", app_port, autostart=True))
    app = make_app(path, captures=settings)
    body = b'{"note": "chunked and stored"}'

    async def chunks():
        yield body[:10]
        yield body[10:]

    async with app.run_test(size=(120, 40)) as pilot:
        await wait_online(pilot, app, "web")
        port = app.host.embedded.http_port
        async with httpx.AsyncClient() as client:
            await client.post(
                f"http://127.0.0.1:{port}/echo/chunked",
                content=chunks(),
                headers={"Host": f"web.localhost:{port}", "Authorization": "Bearer abcdef123456"},
            )
        await wait_for(pilot, lambda: len(app.all_rows) == 1)
    again = make_app(
        profiles(tmp_path, "again.toml", web=Profile("web", app_port)), captures=settings
    )
    async with again.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(again.all_rows) == 1)
        details = await open_details(pilot, again)
        capture = details.record.capture
        assert b"chunked" in capture.request_head.lower()
        assert payload(capture.request_head, capture.request_body) == body
        await pilot.press("r")
        await wait_for(pilot, lambda: len(again.all_rows) == 2)
        echoed = json.loads(again.all_rows[1][1].capture.response_body)
        assert echoed["sha256"] == hashlib.sha256(body).hexdigest()
        # The stored copy: the secret was never on disk, so the marker is what is sent.
        assert ["Authorization", "[redacted]"] in echoed["headers"]


async def test_an_edit_that_does_not_parse_says_which_line(tmp_path, app_port):
    path = profiles(tmp_path, web=Profile("web", app_port, autostart=True))
    app = make_app(path)  # no captures: replays still work, from memory
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_online(pilot, app, "web")
        port = app.host.embedded.http_port
        async with httpx.AsyncClient() as client:
            await client.get(
                f"http://127.0.0.1:{port}/echo/x", headers={"Host": f"web.localhost:{port}"}
            )
        await wait_for(pilot, lambda: len(app.all_rows) == 1)
        await open_details(pilot, app)
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditRequestScreen))
        # The error quotes the line: text that looks like markup is shown, not parsed (it
        # raised MarkupError and ended the dashboard).
        app.screen.query_one(TextArea).text = "GET /echo/x HTTP/1.1\nno colon [/bold] here\n\n"
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        assert isinstance(app.screen, EditRequestScreen)
        error = app.screen.query_one("#edit-error", Static)
        assert error.display and "line 2" in str(error.render())
        assert "'no colon [/bold] here'" in str(error.render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RequestDetailsScreen))
        assert len(app.all_rows) == 1  # nothing was sent
        await pilot.press("d")  # nothing replayed yet: d says so instead of a diff
        await pilot.pause(0.1)
        assert isinstance(app.screen, RequestDetailsScreen)


def test_the_capture_key_is_a_boolean_and_written_only_when_off():
    with pytest.raises(InvalidProfiles, match="capture"):
        Profile("web", 3000, capture="no")  # type: ignore[arg-type]
    document = ProfilesFile(
        profiles={"a": Profile("a", 3000), "b": Profile("b", 3001, capture=False)}
    ).to_toml()
    assert "capture" not in document["profiles"]["a"]
    assert document["profiles"]["b"]["capture"] is False
