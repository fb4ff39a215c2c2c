"""A TCP profile in the dashboard: made in the form, started, its tcp:// address in the sidebar
and its connections in the log pane (pilot, real embedded relay, real local service)."""

from __future__ import annotations

import asyncio
import tomllib

import pytest

from profiles.model import Profile, ProfilesFile
from profiles.store import save
from relay.server import RelaySettings
from tests.tcp.support import echo, local_service, port_block
from tests.tui.drive import make_app, wait_for
from tui.app import MolehillApp
from tui.screens.profile_form import ProfileFormScreen
from tui.widgets.request_log import RequestLog
from tui.widgets.tunnel_list import TunnelList


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_form_makes_a_tcp_profile(tmp_path, size):
    path = tmp_path / "profiles.toml"
    app = make_app(path)
    async with app.run_test(size=size) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ProfileFormScreen))
        screen = app.screen
        screen.query_one("#field-name").value = "db"
        screen.query_one("#field-port").value = "5432"
        screen.query_one("#field-protocol").value = "udp"
        await pilot.pause()
        assert "tcp" in str(screen.query_one("#error-protocol").render())
        assert screen.query_one("#save").disabled
        screen.query_one("#field-protocol").value = "tcp"
        screen.query_one("#field-remote_port").value = "20001"
        await pilot.pause()
        assert not screen.query_one("#save").disabled
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, ProfileFormScreen))
        profile = tomllib.loads(path.read_text())["profiles"]["db"]
        assert profile == {"port": 5432, "protocol": "tcp", "remote_port": 20001}


async def test_a_tcp_profile_shows_its_address_and_its_connections(tmp_path):
    async with local_service(echo) as local:
        path = tmp_path / "profiles.toml"
        save(ProfilesFile(profiles={"db": Profile("db", local, protocol="tcp")}), path)
        relay = RelaySettings(http_port=0, agents_port=0, tcp_ports=port_block())
        app = MolehillApp(path, relay_settings=relay)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.host is not None and app.host.embedded is not None)
            await pilot.press("s")
            await wait_for(
                pilot, lambda: app.statuses.get("db") and app.statuses["db"].state == "online"
            )
            url = app.statuses["db"].url
            assert url.startswith("tcp://localhost:")
            sidebar = app.query_one(TunnelList)
            await wait_for(pilot, lambda: any(url in str(o.prompt) for o in sidebar._options))
            port = int(url.rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hello")
            writer.write_eof()
            assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"hello")
            writer.close()
            log = app.query_one(RequestLog)
            await wait_for(pilot, lambda: len(log.rows) == 1)
            row = log.rows[0][1]
            assert row.method == "TCP"
            assert row.path.endswith(" closed")
            assert row.bytes_in == 5
