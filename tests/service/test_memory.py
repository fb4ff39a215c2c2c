"""An idle service holding two tunnels stays under 60 MiB of resident memory, and idle."""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.reliability.procs import rss_kib
from tests.service.support import service_setup

LIMIT_MIB = 60

pytestmark = pytest.mark.timeout(120)


async def test_idle_service_with_two_tunnels_rss(tmp_path):
    async with service_setup(tmp_path) as setup:
        assert (await setup.molehill("service", "start")).code == 0
        await setup.wait_online("web", "api")
        for n in range(20):  # some traffic first: the capture writer and stats have started
            await setup.curl("web" if n % 2 else "api", f"/echo/{n}")
        pid = (await setup.status())["pid"]
        await asyncio.sleep(3)  # idle
        mib = rss_kib(pid) / 1024
        before = _cpu_seconds(pid)
        await asyncio.sleep(5)
        cpu = (_cpu_seconds(pid) - before) / 5 * 100
        print(f"\nidle service with two tunnels: VmRSS {mib:.1f} MiB, CPU {cpu:.1f}% of a core")
        assert mib < LIMIT_MIB
        assert cpu < 5  # idle means idle: a publish 4 times a second, pings, nothing more


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
