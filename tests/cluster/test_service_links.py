"""`molehill service` and `molehill start` with a profiles file naming two cluster nodes: the
tunnel holds a link through each, and `service status` says how many are up (real service and
start processes, real node processes, real redis-server)."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest

from tests.cluster.node_procs import node_proc, visit
from tests.service.support import Setup, _make_sure_stopped, service_env
from tests.support.cli import molehill_process

pytestmark = pytest.mark.timeout(120)


async def test_the_service_runs_a_profile_through_both_nodes(redis_server, tmp_path, app_port):
    async with (
        node_proc(tmp_path, redis_server.url, "node1") as node1,
        node_proc(tmp_path, redis_server.url, "node2") as node2,
    ):
        setup = Setup(tmp_path, service_env(tmp_path), tmp_path / "profiles.toml", node1)
        urls = f'["{node1.agents_url}", "{node2.agents_url}"]'
        setup.profiles.write_text(
            f"[relay]\nurl = {urls}\n\n[profiles.web]\nport = {app_port}\nautostart = true\n"
        )
        try:
            started = await setup.molehill("service", "start")
            assert started.code == 0, started.err
            await setup.wait_online("web")

            async def links() -> str:
                return (await setup.tunnels())["web"]["links"]

            async def links_are(wanted: str) -> None:
                deadline = time.monotonic() + 15
                while (got := await links()) != wanted:
                    assert time.monotonic() < deadline, f"links: {got!r}, not {wanted!r}"
                    await asyncio.sleep(0.2)

            await links_are("2/2 links up")
            assert redis_server.client().hget("molehill:name:web", "nodes") == "node1 node2"
            assert [await visit(n.http_port, "web") for n in (node1, node2)] == ["ok", "ok"]
            shown = await setup.molehill("service", "status")
            assert f"relay {node1.agents_url}, {node2.agents_url}" in shown.out
            assert "(2/2 links up)" in shown.out

            node1.kill(signal.SIGKILL)
            await links_are(f"1/2 links up; down: {node1.agents_url}")
            assert await visit(node2.http_port, "web") == "ok"
        finally:
            await _make_sure_stopped(setup)


async def test_start_runs_a_profile_through_both_nodes(redis_server, tmp_path, app_port):
    async with (
        node_proc(tmp_path, redis_server.url, "node1") as node1,
        node_proc(tmp_path, redis_server.url, "node2") as node2,
    ):
        profiles = tmp_path / "profiles.toml"
        urls = [node1.agents_url, node2.agents_url]
        profiles.write_text(
            f"[relay]\nurl = {json.dumps(urls)}\n\n[profiles.web]\nport = {app_port}\n"
        )
        env = {"MOLEHILL_RESUME_FILE": str(tmp_path / "resume.json")}
        args = ("--profiles", str(profiles), "start", "web", "--json", "--no-api")
        async with molehill_process(*args, env=env) as run:
            events: list[dict] = []
            while sum(e["event"] == "link" and e["up"] for e in events) < 2:
                events.append(json.loads(await run.line()))
            assert sum(e["event"] == "tunnel_open" for e in events) == 1
            assert {e["relay"] for e in events if e["event"] == "link"} == set(urls)
            assert [await visit(n.http_port, "web") for n in (node1, node2)] == ["ok", "ok"]
            assert await run.terminate() == 0
