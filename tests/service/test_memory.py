"""An idle service holding two tunnels stays under 60 MiB of resident memory."""

from __future__ import annotations

import asyncio

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
        print(f"\nidle service with two tunnels: VmRSS {mib:.1f} MiB")
        assert mib < LIMIT_MIB
