"""A replay from a dashboard attached to the service is made by the service: it holds the
originals (the secrets the store redacts) of what its tunnels captured while nobody watched,
and it stores the answer linked to the request it replays."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from inspector import CaptureSettings
from tests.service.support import TWO_PROFILES, service_setup
from tests.service.test_attach import _dashboard, _paths, _until, in_service_env  # noqa: F401
from tests.support.apps import raw_server
from tests.tui.test_inspector_replays import open_details
from tui.service.remote import attach_if_running

pytestmark = pytest.mark.timeout(180)
SECRET = b"Bearer s3cret-webhook-token"


async def test_a_request_that_came_while_detached_is_replayed_with_its_original(
    tmp_path,
    in_service_env,  # noqa: F811
):
    async with service_setup(tmp_path) as setup, raw_server() as app_side:
        setup.ports["web"] = app_side.port  # records every byte the app is sent
        setup.write_profiles(TWO_PROFILES)
        assert (await setup.molehill("service", "start")).code == 0
        await setup.wait_online("web", "api")
        async with httpx.AsyncClient() as client:  # nobody is watching
            sent = await client.post(
                f"{setup.relay.http_url}/hook",
                content=b'{"event": "paid"}',
                headers={"Host": setup.relay.host("web"), "Authorization": SECRET.decode()},
            )
        assert sent.status_code == 200

        remote = attach_if_running(setup.profiles)
        assert remote is not None
        app = _dashboard(setup, remote)
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await _until(pilot, lambda: "/hook" in _paths(app, "web"), "the history row")
            await open_details(pilot, app)
            await pilot.press("r")

            def replays() -> list:
                return [r for _, r in app.all_rows if getattr(r, "replay_of", None)]

            await _until(pilot, lambda: bool(replays()), "the replay's row")
            (replayed,) = replays()
            assert replayed.path == "/hook" and replayed.status == 200
            await pilot.press("escape")
            await pilot.press("q")
        # The app got the original secret twice: the visitor's request and the replay.
        assert bytes(app_side.received).count(SECRET) == 2
        assert bytes(app_side.received).count(b'{"event": "paid"}') == 2

    with sqlite3.connect(CaptureSettings().file) as db:
        rows = db.execute("SELECT id, replay_of, req_head FROM exchanges ORDER BY id").fetchall()
    assert [r[1] for r in rows] == [None, rows[0][0]]  # stored, linked to what it replays
    assert all(SECRET not in bytes(r[2]) for r in rows)  # the store keeps only the marker
