"""`molehill --service` in a real terminal (a pty): it starts the service, attaches to it, and
`q` leaves the tunnels running in the service after the dashboard process has exited."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import struct
import sys
import termios

import pytest

from tests.service.support import ROOT, service_setup

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("asked", ["--service", "MOLEHILL_SERVICE=1"])
async def test_dashboard_starts_the_service_and_q_leaves_it_running(tmp_path, asked):
    """Asked by the flag, or by the setting in the environment (a shell's profile)."""
    async with service_setup(tmp_path) as setup:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = {**setup.env, "TERM": "xterm-256color"}
        flags = [asked] if asked.startswith("--") else []
        if not flags:
            env["MOLEHILL_SERVICE"] = "1"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tui.cli",
            "--profiles",
            str(setup.profiles),
            "--no-api",
            *flags,
            cwd=ROOT,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        os.set_blocking(master, False)
        screen = bytearray()

        def read() -> None:
            try:
                while chunk := os.read(master, 65536):
                    screen.extend(chunk)
            except (BlockingIOError, OSError):
                pass

        try:
            tunnels = await setup.wait_online("web", "api", timeout=30)
            assert tunnels["web"]["url"]
            async with asyncio.timeout(20):
                while b"Detach" not in screen:  # the footer, once attached
                    read()
                    await asyncio.sleep(0.1)
            os.write(master, b"q")
            async with asyncio.timeout(20):
                while proc.returncode is None:
                    read()
                    await asyncio.sleep(0.1)
            assert proc.returncode == 0, screen.decode(errors="replace")[-2000:]
            assert b"molehill service started: pid" in screen
            tunnels = await setup.tunnels()
            assert tunnels["web"]["state"] == "online"  # the dashboard is gone; they are not
            code, _ = await setup.curl("web", "/echo/after-detach")
            assert code == 200
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            os.close(master)
