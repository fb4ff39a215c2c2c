"""A dashboard that stops reading its feed costs the tunnels nothing: requests go on, another
dashboard gets every record, and the slow one is told how many it missed once it reads again."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from tests.service.support import service_env, service_setup
from tui.service.control import FEED_BACKLOG
from tui.service.paths import service_paths
from tui.service.protocol import Decoder, encode
from tui.service.remote import attach_if_running

pytestmark = pytest.mark.timeout(180)

BODY = b"x" * 60_000  # kept whole in the feed (under its 64 KiB share): about 60 KB a record
REQUESTS = 250  # about 15 MB of feed: well over the backlog a client may have


@pytest.fixture
def in_service_env(tmp_path, monkeypatch):
    for key, value in service_env(tmp_path).items():
        if key.startswith(("XDG_", "MOLEHILL_")) or key == "HOME":
            monkeypatch.setenv(key, value)


async def test_a_stalled_dashboard_slows_nothing(tmp_path, in_service_env):
    assert REQUESTS * len(BODY) > 1.5 * FEED_BACKLOG
    async with service_setup(tmp_path) as setup:
        assert (await setup.molehill("service", "start")).code == 0
        await setup.wait_online("web", "api")
        stalled = socket.socket(socket.AF_UNIX)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(str(service_paths(setup.profiles).socket))
        stalled.sendall(encode({"op": "hello", "subscribe": True, "id": 1}))
        reader = attach_if_running(setup.profiles)
        assert reader is not None
        seen = 0
        try:
            async with httpx.AsyncClient(base_url=setup.relay.http_url, timeout=20) as client:
                for n in range(REQUESTS):
                    response = await client.post(
                        f"/echo/{n}", content=BODY, headers={"Host": setup.relay.host("web")}
                    )
                    assert response.status_code == 200
                    seen += len(reader.drain().records.get("web", []))
            async with asyncio.timeout(20):
                while seen < REQUESTS:
                    seen += len(reader.drain().records.get("web", []))
                    await asyncio.sleep(0.05)
            assert seen == REQUESTS  # the reading dashboard missed nothing
            assert reader.take_dropped() == 0

            # The stalled one reads again: records it got plus those it is told it missed.
            async with asyncio.timeout(40):
                got, missed = await asyncio.to_thread(_read_until_all_accounted, stalled)
            assert missed > 0
            assert got + missed == REQUESTS
            assert (await setup.tunnels())["web"]["requests"] == REQUESTS
        finally:
            stalled.close()
            reader.stop()


def _read_until_all_accounted(stalled: socket.socket) -> tuple[int, int]:
    """Records received and records reported missed, until they add up to every request."""
    got = missed = 0
    decoder = Decoder()
    stalled.settimeout(30)
    while got + missed < REQUESTS:
        data = stalled.recv(1 << 20)
        assert data, "the service closed the slow client"
        for message in decoder.feed(data):
            if "feed" in message:
                got += sum(len(v) for v in message["feed"]["records"].values())
            missed += message.get("dropped", 0)
    return got, missed
