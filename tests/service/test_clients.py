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


async def test_bad_requests_get_reasons_and_bad_framing_closes_only_that_client(
    tmp_path, in_service_env
):
    import socket

    from tui.service.client import ServiceConnection
    from tui.service.paths import service_paths

    async with service_setup(tmp_path) as setup:
        assert (await setup.molehill("service", "start")).code == 0
        await setup.wait_online("web", "api")
        path = service_paths(setup.profiles).socket
        conn = ServiceConnection(path)
        try:
            reply = conn.request("format_disk")
            assert not reply["ok"] and "unknown op 'format_disk'" in reply["error"]
            reply = conn.request("stop", key=5)
            assert not reply["ok"] and "'key' must be a non-empty string" in reply["error"]
            reply = conn.request("start", key="web", settings={"~": "Popen", "args": "rm"})
            assert not reply["ok"] and "unknown form 'Popen'" in reply["error"]
            reply = conn.request("start", key="web", settings={"~": "TunnelOpen"})
            assert not reply["ok"]
            reply = conn.request("start", key="nope")
            assert not reply["ok"] and "no profile named 'nope'" in reply["error"]
            for exchange, options in ((True, {}), (-3, {}), ("1", {}), (7, ["edit"])):
                reply = conn.request("replay", exchange=exchange, options=options)
                assert not reply["ok"] and "'exchange' must be a stored id" in reply["error"]
            reply = conn.request("replay", exchange=2**40, options={})
            assert not reply["ok"] and "no captured request" in reply["error"]
            reply = conn.request("replay", exchange=1, options={"edit": {"method": "GET\r\nX"}})
            assert not reply["ok"]  # no such exchange, or a bad edit: a reason either way
        finally:
            conn.close()

        rogue = socket.socket(socket.AF_UNIX)
        rogue.connect(str(path))
        rogue.sendall(b"\xff\xff\xff\xff")  # announces 4 GiB
        rogue.settimeout(5)
        said = rogue.recv(4096)
        assert b"limit" in said
        assert rogue.recv(4096) == b""  # closed
        rogue.close()

        half = socket.socket(socket.AF_UNIX)
        half.connect(str(path))
        half.sendall(b"\x00\x00\x01\x00abc")  # a truncated message, then the client vanishes
        half.close()

        conn = ServiceConnection(path)
        try:
            assert conn.request("status")["ok"]
        finally:
            conn.close()
        tunnels = await setup.tunnels()
        assert tunnels["web"]["state"] == "online" and tunnels["api"]["state"] == "online"


async def test_a_refused_request_reaches_the_dashboards_host(tmp_path, in_service_env):
    async with service_setup(tmp_path) as setup:
        assert (await setup.molehill("service", "start")).code == 0
        host = attach_if_running(setup.profiles)
        assert host is not None
        try:
            host._send("start", key="nope")  # as a dashboard with a stale profile list would
            async with asyncio.timeout(10):
                while not (problems := host.problems()):
                    await asyncio.sleep(0.05)
            assert "no profile named 'nope'" in problems[0]
        finally:
            host.stop()
