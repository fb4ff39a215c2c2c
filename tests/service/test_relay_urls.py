"""A profiles file whose `[relay] url` lists several relays: `service status --json` gives them
all (`relay_urls`), and a dashboard attached to the service names them all in its relay bar
(real relay processes, a real service process)."""

from __future__ import annotations

import asyncio
import json

import pytest

from inspector import CaptureSettings
from tests.reliability.procs import relay_process
from tests.service.support import service_setup
from tests.service.test_attach import in_service_env  # noqa: F401  (a fixture used below)
from tui.app import MolehillApp
from tui.service.remote import attach_if_running

pytestmark = pytest.mark.timeout(180)


async def test_status_and_an_attached_dashboard_give_every_relay_url(
    tmp_path,
    in_service_env,  # noqa: F811
):
    async with (
        service_setup(tmp_path) as setup,
        relay_process(tmp_path / "logs2", lease=30.0) as second,
    ):
        urls = [setup.relay.agents_url, second.agents_url]
        setup.profiles.write_text(
            f"[relay]\nurl = {json.dumps(urls)}\n\n"
            f"[profiles.web]\nport = {setup.ports['web']}\nautostart = true\n"
        )
        assert (await setup.molehill("service", "start")).code == 0
        await setup.wait_online("web")

        status = await setup.status()
        assert status["relay_urls"] == urls
        assert status["relay"] == ", ".join(urls)  # the string it always was, unchanged
        shown = await setup.molehill("service", "status")
        assert f"relay {urls[0]}, {urls[1]}" in shown.out

        for size in ((80, 24), (120, 40)):
            remote = attach_if_running(setup.profiles)
            assert remote is not None
            assert (remote.relay_url, remote.more_relays) == (urls[0], (urls[1],))
            app = MolehillApp(setup.profiles, captures=CaptureSettings(), api=None, service=remote)
            async with app.run_test(size=size) as pilot:
                bar = app.query_one("#relay-bar")
                async with asyncio.timeout(15):
                    while f"relay {urls[0]}, {urls[1]}" not in str(bar.render()):
                        await pilot.pause(0.05)
                await pilot.press("q")  # detach: the service keeps running
            assert not remote.lost
