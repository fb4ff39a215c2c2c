"""`molehill relay` and `molehill http` as real processes: what they print, their exit codes, and
a clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from pathlib import Path

import httpx

from tests.support.apps import raw_server
from tests.support.cli import molehill_process
from tests.support.stack import agent_for, running_relay

REQUEST_KEYS = {
    "event",
    "time",
    "method",
    "path",
    "status",
    "duration_ms",
    "ttfb_ms",
    "bytes_in",
    "bytes_out",
    "client",
    "stream",
    "http_version",
    "app_ttfb_ms",
    "app_ms",
    "overhead_ms",
    "failure_kind",
    "failure",
}


def busy_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


async def test_relay_prints_where_it_listens_and_exits_cleanly_on_sigterm(app_port):
    async with molehill_process(
        "relay", "--http", "127.0.0.1:0", "--agents", "127.0.0.1:0"
    ) as relay:
        first = await relay.line()
        assert first.startswith("molehill relay: tunnels at http://NAME.localhost:")
        http_port = int(
            (await relay.line_matching(r"public HTTP\s+http://127\.0\.0\.1:(\d+)")).group(1)
        )
        agents = (await relay.line_matching(r"agents\s+(ws://127\.0\.0\.1:\d+)")).group(1)
        assert first.endswith(f":{http_port}")
        assert f"--relay {agents}" in relay.lines[-1]

        # it really serves: an agent connects, a visitor gets through
        async with (
            molehill_process(
                "http", str(app_port), "--relay", agents, "--subdomain", "cli", "--json"
            ) as agent,
            httpx.AsyncClient(timeout=5) as c,
        ):
            opened = json.loads(await agent.line())
            assert opened["event"] == "tunnel_open"
            resp = await c.get(
                f"http://127.0.0.1:{http_port}/", headers={"Host": f"cli.localhost:{http_port}"}
            )
            assert resp.text == "hello from the local app"
            assert await agent.terminate() == 0

        assert await relay.terminate() == 0
        rest = (await relay.proc.stdout.read()).decode()
        assert "shutting down" in rest
        stderr = await relay.rest_of_stderr()
        assert "Traceback" not in stderr, stderr


async def test_relay_on_a_busy_port_exits_1_with_a_message():
    with busy_socket() as sock:
        port = sock.getsockname()[1]
        async with molehill_process(
            "relay", "--http", f"127.0.0.1:{port}", "--agents", "127.0.0.1:0"
        ) as r:
            async with asyncio.timeout(10):
                code = await r.proc.wait()
            stderr = await r.rest_of_stderr()
    assert code == 1
    assert "cannot listen" in stderr
    assert "Traceback" not in stderr


async def test_http_json_prints_tunnel_open_then_one_line_per_request(app_port):
    async with (
        running_relay() as relay,
        molehill_process(
            "http", str(app_port), "--relay", relay.agents_url, "--subdomain", "jsonl", "--json"
        ) as agent,
    ):
        opened = json.loads(await agent.line())
        assert opened == {
            "event": "tunnel_open",
            "name": "jsonl",
            "url": f"http://jsonl.localhost:{relay.http_port}",
            "local": f"127.0.0.1:{app_port}",
        }
        host = f"jsonl.localhost:{relay.http_port}"
        async with httpx.AsyncClient(base_url=relay.http_url, headers={"Host": host}) as c:
            assert (await c.get("/echo/one?x=1")).status_code == 200
            assert (await c.post("/echo/two", content=b"12345")).status_code == 200
            assert (await c.get("/status/404")).status_code == 404

        records = [json.loads(await agent.line()) for _ in range(3)]
        for record in records:
            assert set(record) >= REQUEST_KEYS, set(REQUEST_KEYS) - set(record)
            assert record["event"] == "request"
            assert record["client"] == "127.0.0.1"
            assert record["duration_ms"] > 0 and record["bytes_out"] > 0
        assert [(r["method"], r["path"], r["status"]) for r in records] == [
            ("GET", "/echo/one?x=1", 200),
            ("POST", "/echo/two", 200),
            ("GET", "/status/404", 404),
        ]
        # the POST's bytes_in counts its head and its 5-byte body
        assert records[1]["bytes_in"] >= len(b"POST /echo/two HTTP/1.1\r\n\r\n") + 5
        assert await agent.terminate() == 0
        stderr = await agent.rest_of_stderr()
        assert "Traceback" not in stderr, stderr


async def test_http_human_output(app_port):
    async with (
        running_relay() as relay,
        molehill_process(
            "http", str(app_port), "--relay", relay.agents_url, "--subdomain", "human"
        ) as agent,
    ):
        url = f"http://human.localhost:{relay.http_port}"
        first = await agent.line()
        assert url in first
        assert f"127.0.0.1:{app_port}" in first
        async with httpx.AsyncClient(
            base_url=relay.http_url, headers={"Host": f"human.localhost:{relay.http_port}"}
        ) as c:
            await c.get("/echo/a")
            await c.get("/status/503")
        lines = [await agent.line(), await agent.line()]
        assert re.search(r"\bGET\s+/echo/a\s+200\b", lines[0]), lines[0]
        assert re.search(r"\bGET\s+/status/503\s+503\b", lines[1]), lines[1]
        assert re.search(r"\d+(\.\d+)?ms", lines[0])
        assert await agent.terminate() == 0


async def test_http_says_why_when_the_local_app_is_down_and_stops_when_it_is_back():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe is closed
    async with (
        running_relay() as relay,
        molehill_process(
            "http", str(port), "--relay", relay.agents_url, "--subdomain", "gone"
        ) as agent,
        httpx.AsyncClient(
            base_url=relay.http_url, headers={"Host": f"gone.localhost:{relay.http_port}"}
        ) as c,
    ):
        await agent.line()
        assert (await c.get("/x")).status_code == 502
        line = await agent.line()
        assert re.search(r"\bGET\s+/x\s+502\s+\d+\.\dms\b", line), line
        assert line.endswith(f"  local app refused the connection (127.0.0.1:{port})"), line

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nback")
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", port)
        try:
            assert (await c.get("/y")).text == "back"
            line = await agent.line()
        finally:
            server.close()
        assert re.search(r"\bGET\s+/y\s+200\b", line), line
        assert line.endswith(" out"), line  # no reason on a request the app answered
        assert await agent.terminate() == 0


async def test_http_json_has_the_failure_and_the_app_time(app_port):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with running_relay() as relay:
        for local, name in ((port, "gone"), (app_port, "up")):
            async with (
                molehill_process(
                    "http", str(local), "--relay", relay.agents_url, "--subdomain", name, "--json"
                ) as agent,
                httpx.AsyncClient(
                    base_url=relay.http_url, headers={"Host": f"{name}.localhost:{relay.http_port}"}
                ) as c,
            ):
                await agent.line()
                await c.get("/echo/z")
                record = json.loads(await agent.line())
                assert set(record) >= REQUEST_KEYS, set(REQUEST_KEYS) - set(record)
                assert await agent.terminate() == 0
            if local == port:
                assert (record["status"], record["failure_kind"]) == (502, "refused")
                assert record["failure"] == f"local app refused the connection (127.0.0.1:{port})"
                assert record["app_ms"] is None
            else:
                assert (record["status"], record["failure_kind"], record["failure"]) == (
                    200,
                    "",
                    "",
                )
                assert 0 < record["app_ms"] <= record["duration_ms"]
                assert record["overhead_ms"] >= 0


async def test_http_with_a_taken_subdomain_exits_1_with_a_clear_message(app_port):
    async with (
        running_relay() as relay,
        agent_for(relay, app_port, "busy"),
        molehill_process(
            "http", str(app_port), "--relay", relay.agents_url, "--subdomain", "busy"
        ) as agent,
    ):
        async with asyncio.timeout(10):
            code = await agent.proc.wait()
        stderr = await agent.rest_of_stderr()
    assert code == 1
    assert "busy" in stderr and "in use" in stderr
    assert "Traceback" not in stderr


def write_profiles(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


async def test_start_all_carries_traffic_for_two_profiles_through_a_loopback_relay(
    tmp_path, app_port
):
    async with raw_server() as second, running_relay() as relay:
        profiles = write_profiles(
            tmp_path / "profiles.toml",
            f'[relay]\nurl = "{relay.agents_url}"\n\n'
            f"[profiles.web]\nport = {app_port}\n\n"
            f'[profiles.api]\nport = {second.port}\nsubdomain = "backend"\n',
        )
        async with molehill_process("--profiles", str(profiles), "start", "--all", "--json") as run:
            opened = {}
            while len(opened) < 2:
                event = json.loads(await run.line())
                if event["event"] == "tunnel_open":
                    opened[event["profile"]] = event
            assert opened["web"]["name"] == "web"
            assert opened["api"]["name"] == "backend"
            base = f"http://127.0.0.1:{relay.http_port}"
            # One client per tunnel: a connection belongs to one tunnel (another Host gets 421).
            async with httpx.AsyncClient(base_url=base) as a, httpx.AsyncClient(base_url=base) as b:
                web = await a.get("/echo/one", headers={"Host": f"web.localhost:{relay.http_port}"})
                api = await b.get("/two", headers={"Host": f"backend.localhost:{relay.http_port}"})
            assert web.status_code == 200 and web.json()["path"] == "/echo/one"
            assert api.status_code == 200 and api.text == "ok"
            seen = {}
            while len(seen) < 2:
                event = json.loads(await run.line())
                if event["event"] == "request":
                    seen[event["profile"]] = event["path"]
            assert seen == {"web": "/echo/one", "api": "/two"}
            assert await run.terminate() == 0


async def test_start_uses_an_embedded_relay_when_none_is_configured(tmp_path, app_port):
    profiles = write_profiles(tmp_path / "profiles.toml", f"[profiles.web]\nport = {app_port}\n")
    async with molehill_process(
        "start", "web", "--profiles", str(profiles), "--http", "127.0.0.1:0"
    ) as run:
        port = int(
            (
                await run.line_matching(r"embedded relay: tunnels at http://NAME\.localhost:(\d+)")
            ).group(1)
        )
        await run.line_matching(r"\[web\] tunnel 'web' online: http://web\.localhost:\d+")
        async with httpx.AsyncClient() as client:
            resp = await client.get(
                f"http://127.0.0.1:{port}/echo/x", headers={"Host": f"web.localhost:{port}"}
            )
        assert resp.status_code == 200
        line = await run.line_matching(r"^\[web\] .*GET\s+/echo/x\s+200")
        assert line
        assert await run.terminate() == 0


async def test_start_reports_bad_profiles_file_with_exit_code_2(tmp_path):
    profiles = write_profiles(tmp_path / "profiles.toml", "[profiles.web]\nport = 0\n")
    before = profiles.read_bytes()
    async with molehill_process("start", "--all", "--profiles", str(profiles)) as run:
        assert await asyncio.wait_for(run.proc.wait(), 10) == 2
        err = await run.rest_of_stderr()
    assert "[profiles.web] port" in err
    assert profiles.read_bytes() == before


async def test_a_restarted_agent_gets_its_name_back_within_the_lease(tmp_path, app_port):
    """kill -9, start again: the resume token kept on disk reclaims the held name."""
    resume = {"MOLEHILL_RESUME_FILE": str(tmp_path / "resume.json")}
    async with running_relay(lease=30.0) as relay:
        args = ("http", str(app_port), "--relay", relay.agents_url, "--subdomain", "keep", "--json")
        async with molehill_process(*args, env=resume) as first:
            assert json.loads(await first.line())["event"] == "tunnel_open"
            first.proc.kill()
            await first.proc.wait()
        for _ in range(100):  # the relay notices the dead connection
            if "keep" in relay.leases:
                break
            await asyncio.sleep(0.05)
        assert "keep" in relay.leases
        # Someone else asking for the held name is refused...
        other = {"MOLEHILL_RESUME_FILE": str(tmp_path / "other.json")}
        async with molehill_process(*args, env=other) as thief:
            assert await asyncio.wait_for(thief.proc.wait(), 10) == 1
        # ...while the restarted agent gets it back.
        async with molehill_process(*args, env=resume) as second:
            event = json.loads(await second.line())
            assert event["event"] == "tunnel_open" and event["name"] == "keep"
            # and a second copy running at the same time does not steal it
            async with molehill_process(*args, env=resume) as copy:
                assert await asyncio.wait_for(copy.proc.wait(), 10) == 1
            assert "keep" in relay.tunnels
            assert await second.terminate() == 0
