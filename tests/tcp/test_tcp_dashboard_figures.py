"""The dashboard's pane for a TCP tunnel: live throughput each way, open and total connections
(pilot at 80x24 and 120x40, real embedded relay, real local service and client)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re

import pytest
from rich.console import Console

from profiles.model import Profile, ProfilesFile
from profiles.store import save
from relay.server import RelaySettings
from tests.tcp.support import echo, local_service, port_block
from tests.tui.drive import wait_for
from tui.app import MolehillApp
from tui.widgets.latency_pane import LatencyPane


def pane_text(app: MolehillApp) -> str:
    console = Console(width=200, record=True, file=io.StringIO(), color_system=None)
    console.print(app.query_one(LatencyPane).query_one("#figures").content)
    return console.export_text()


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        writer.write(b"q" * 8192)
        await writer.drain()
        await reader.readexactly(8192)
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_a_tcp_tunnel_shows_its_live_throughput_and_connections(tmp_path, size):
    async with local_service(echo) as local:
        path = tmp_path / "profiles.toml"
        save(ProfilesFile(profiles={"db": Profile("db", local, protocol="tcp")}), path)
        relay = RelaySettings(http_port=0, agents_port=0, tcp_ports=port_block())
        app = MolehillApp(path, relay_settings=relay)
        async with app.run_test(size=size) as pilot:
            await wait_for(pilot, lambda: app.host is not None and app.host.embedded is not None)
            await pilot.press("s")
            await wait_for(
                pilot, lambda: app.statuses.get("db") and app.statuses["db"].state == "online"
            )
            await wait_for(pilot, lambda: "0 open" in pane_text(app))
            port = int(app.statuses["db"].url.rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            sending = asyncio.create_task(trickle(reader, writer))
            try:
                moving = re.compile(r"now\s+[1-9][\d.]*[KM]?B/s\s+[1-9][\d.]*[KM]?B/s")
                await wait_for(pilot, lambda: moving.search(pane_text(app)) is not None)
                text = pane_text(app)
                assert "1 open" in text and "1 total" in text
            finally:
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sending
            writer.close()
            await wait_for(pilot, lambda: "0 open" in pane_text(app))
            # the connection is over: once the window has passed, nothing moves
            still = re.compile(r"now\s+0B/s\s+0B/s")
            await wait_for(pilot, lambda: still.search(pane_text(app)) is not None, timeout=15)
