"""Several clients of one service process: two dashboards' hosts see the same traffic, and a
dashboard's edit (saved, then restarted through the socket) is what a reload finds in place."""

from __future__ import annotations

import asyncio

import pytest

from profiles.store import load
from tests.service.support import service_env, service_setup
from tui.service.remote import RemoteHost, attach_if_running
from tui.service.tunnels import agent_settings

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def in_service_env(tmp_path, monkeypatch):
    for key, value in service_env(tmp_path).items():
        if key.startswith(("XDG_", "MOLEHILL_")) or key == "HOME":
            monkeypatch.setenv(key, value)


async def _paths_seen(host: RemoteHost, tunnel: str, want: str, timeout: float = 10.0) -> None:
    seen: list[str] = []
    async with asyncio.timeout(timeout):
        while want not in seen:
            seen += [r.path for r in host.drain().records.get(tunnel, [])]
            await asyncio.sleep(0.05)


async def test_two_dashboards_see_the_same_traffic(tmp_path, in_service_env):
    async with service_setup(tmp_path) as setup:
        assert (await setup.molehill("service", "start")).code == 0
        await setup.wait_online("web", "api")
        first = attach_if_running(setup.profiles)
        second = attach_if_running(setup.profiles)
        assert first is not None and second is not None
        try:
            await setup.curl("web", "/echo/both")
            await asyncio.gather(
                _paths_seen(first, "web", "/echo/both"), _paths_seen(second, "web", "/echo/both")
            )
            assert (await setup.status())["attached"] == 2
        finally:
            first.stop()
            second.stop()


async def test_a_dashboards_edit_is_in_place_for_the_next_reload(tmp_path, in_service_env):
    async with service_setup(tmp_path) as setup:
        assert (await setup.molehill("service", "start")).code == 0
        await setup.wait_online("web", "api")
        host = attach_if_running(setup.profiles)
        assert host is not None
        try:
            # What the dashboard's edit screen does: save the file, restart the tunnel.
            setup.write_profiles(
                "[profiles.web]\nport = {api}\nautostart = true\n\n"
                "[profiles.api]\nport = {api}\nautostart = true\n"
            )
            web = load(setup.profiles).file.profiles["web"]
            host.restart_tunnel("web", "web", agent_settings(web))
            async with asyncio.timeout(15):
                while (t := await setup.tunnels())["web"][
                    "local"
                ] != f"127.0.0.1:{setup.ports['api']}" or t["web"]["state"] != "online":
                    await asyncio.sleep(0.1)
            reloaded = await setup.molehill("service", "reload")
            assert reloaded.code == 0
            assert "unchanged: api, web" in reloaded.out
            assert "restarted" not in reloaded.out
        finally:
            host.stop()
