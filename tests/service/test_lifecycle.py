"""`molehill service` as real processes: start, a second start, status, traffic, stop, kill -9
and a restart that gets the names back, reload with and without a broken file."""

from __future__ import annotations

import asyncio
import os
import signal
import stat

import pytest

from tests.service.support import service_setup
from tui.service.pidlock import alive

pytestmark = pytest.mark.timeout(180)


async def test_start_status_traffic_and_stop(tmp_path):
    async with service_setup(tmp_path) as setup:
        started = await setup.molehill("service", "start")
        assert started.code == 0, started.err
        assert "molehill service started: pid" in started.out
        tunnels = await setup.wait_online("web", "api")
        status = await setup.status()
        pid = status["pid"]
        socket_path = status["socket"]
        assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o600
        assert socket_path.startswith(setup.env["XDG_RUNTIME_DIR"])
        assert status["log"].startswith(str(tmp_path / "state"))

        # The terminal that started it is gone: the service is in a session of its own.
        assert os.getsid(pid) == pid

        again = await setup.molehill("service", "start")
        assert again.code == 1
        assert f"pid {pid}, socket {socket_path}" in again.err

        for path in ("/echo/one", "/echo/two", "/status/503"):
            code, _ = await setup.curl("web", path)
        assert code == 503
        code, body = await setup.curl("api", "/echo/api")
        assert code == 200 and "/echo/api" in body

        async with asyncio.timeout(10):
            while (t := await setup.tunnels())["web"]["requests"] < 3:
                await asyncio.sleep(0.1)
        assert t["web"]["errors"] == 1
        assert t["api"]["requests"] == 1
        assert t["web"]["url"] == tunnels["web"]["url"]
        assert t["web"]["uptime"] > 0

        table = await setup.molehill("service", "status")
        assert table.code == 0
        lines = table.out.splitlines()
        assert lines[0].startswith(f"molehill service: pid {pid}")
        web_line = next(line for line in lines if line.startswith("web "))
        assert "online" in web_line and t["web"]["url"] in web_line

        stopped = await setup.molehill("service", "stop")
        assert stopped.code == 0, stopped.err
        assert f"was pid {pid}" in stopped.out
        assert not alive(pid)
        assert not os.path.exists(socket_path)
        after = await setup.molehill("service", "status", "--json")
        assert after.code == 3 and after.json()["running"] is False
        # A deliberate stop says GOAWAY: the relay frees the name at once (404, not held).
        code, _ = await setup.curl("web", "/echo/after")
        assert code == 404
        log = (tmp_path / "state").rglob("service-*.log")
        text = "".join(p.read_text() for p in log)
        assert "web online" in text and "stopping: tunnels close (GOAWAY)" in text


async def test_kill_9_then_start_gets_the_names_back(tmp_path):
    async with service_setup(tmp_path) as setup:
        assert (await setup.molehill("service", "start")).code == 0
        before = await setup.wait_online("web", "api")
        pid = (await setup.status())["pid"]
        os.kill(pid, signal.SIGKILL)
        # Each status check is a new CLI process: seconds apiece when the other worker's tests
        # load both cores (the 10 s this once allowed ran out in CI).
        async with asyncio.timeout(30):
            while (await setup.molehill("service", "status")).code != 3:
                await asyncio.sleep(0.1)
        # The kernel dropped the lock with the process: a new start is not blocked by it.
        restarted = await setup.molehill("service", "start")
        assert restarted.code == 0, restarted.err
        after = await setup.wait_online("web", "api", timeout=60)  # a fresh start, under load
        # The relay still holds the names for the dead agent (lease 30s): only the resume
        # tokens the killed service kept get them back.
        assert after["web"]["url"] == before["web"]["url"]
        assert after["api"]["url"] == before["api"]["url"]
        code, body = await setup.curl("web", "/echo/back")
        assert code == 200 and "/echo/back" in body


async def test_reload_keeps_unchanged_tunnels_and_refuses_a_broken_file(tmp_path):
    async with service_setup(tmp_path) as setup:
        assert (await setup.molehill("service", "start")).code == 0
        await setup.wait_online("web", "api")
        await setup.curl("web", "/echo/1")
        async with asyncio.timeout(10):
            while (await setup.tunnels())["web"]["requests"] < 1:
                await asyncio.sleep(0.1)
        uptime = (await setup.tunnels())["web"]["uptime"]

        setup.write_profiles(
            "[profiles.web]\nport = {web}\nautostart = true\n\n"
            "[profiles.docs]\nport = {api}\nautostart = true\n"
        )
        reloaded = await setup.molehill("service", "reload")
        assert reloaded.code == 0, reloaded.err
        assert "started: docs" in reloaded.out
        assert "stopped: api" in reloaded.out
        assert "unchanged: web" in reloaded.out
        tunnels = await setup.wait_online("web", "docs")
        assert tunnels["api"]["state"] != "online"
        # Not reconnected: the same tunnel, its uptime and figures go on.
        assert tunnels["web"]["uptime"] >= uptime
        assert tunnels["web"]["requests"] == 1

        setup.profiles.write_text("[profiles.web\nport = ")
        broken = await setup.molehill("service", "reload")
        assert broken.code == 2
        assert "tunnels left as they were" in broken.err
        assert "profiles.toml" in broken.err
        tunnels = await setup.tunnels()
        assert tunnels["web"]["state"] == "online" and tunnels["docs"]["state"] == "online"
        code, _ = await setup.curl("docs", "/echo/still")
        assert code == 200


async def test_start_with_a_broken_file_says_why_and_starts_nothing(tmp_path):
    async with service_setup(tmp_path) as setup:
        setup.profiles.write_text("[profiles.web]\nport = 'x'\n")
        result = await setup.molehill("service", "start")
        assert result.code == 2
        assert "profiles.toml" in result.err
        assert (await setup.molehill("service", "status")).code == 3
