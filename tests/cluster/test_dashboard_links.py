"""The dashboard with a profiles file naming two cluster nodes (``[relay] url = [A, B]``): its
tunnel holds a link through each, says so in the tunnel's line, and says which went down when
a node is killed (pilot at 80x24 and 120x40; real node processes, real redis-server)."""

from __future__ import annotations

import signal

import pytest

from profiles.model import Profile, ProfilesFile
from profiles.relay import RelaySettings
from profiles.store import save
from tests.cluster.node_procs import node_proc, visit
from tests.tui.drive import make_app, wait_for, wait_online
from tests.tui.test_app_down import plain
from tui.widgets.tunnel_info import TunnelInfo


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_a_profile_tunnel_runs_through_both_nodes(redis_server, tmp_path, app_port, size):
    async with (
        node_proc(tmp_path, redis_server.url, "node1") as node1,
        node_proc(tmp_path, redis_server.url, "node2") as node2,
    ):
        path = tmp_path / "profiles.toml"
        relay = RelaySettings((node1.agents_url, node2.agents_url))
        save(ProfilesFile(relay, {"web": Profile("web", app_port, autostart=True)}), path)
        app = make_app(path)
        async with app.run_test(size=size) as pilot:
            await wait_online(pilot, app, "web")
            assert app.host is not None and app.host.embedded is None  # the file's nodes
            await wait_for(pilot, lambda: app.statuses["web"].links == "2/2 links up")
            info = app.query_one(TunnelInfo)
            await wait_for(pilot, lambda: "2/2 links up" in plain(info.content))
            record = redis_server.client().hgetall("molehill:name:web")
            assert record["nodes"] == "node1 node2"
            assert [await visit(n.http_port, "web") for n in (node1, node2)] == ["ok", "ok"]

            node2.kill(signal.SIGKILL)
            down = f"1/2 links up; down: {node2.agents_url}"
            await wait_for(pilot, lambda: down in plain(info.content), timeout=10)
            assert app.statuses["web"].state == "online"
            assert await visit(node1.http_port, "web") == "ok"
            await wait_for(pilot, lambda: info.region.height >= 1)
