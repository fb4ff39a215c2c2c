"""`molehill connections list` and the local API of `molehill tcp`, with real processes.

A real relay and `molehill tcp` run as subprocesses; real TCP clients go through the public
port to an echo service in the test; the CLI asks the agent's local API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator

import pytest

from tests.support.cli import molehill_process, run_molehill
from tests.support.stack import running_relay
from tests.tcp.support import local_service, port_block
from tui import api_probe
from tui.cli import main as molehill_main


@contextlib.asynccontextmanager
async def tcp_with_api(local_port: int) -> AsyncIterator[tuple[int, str, object]]:
    """Relay + `molehill tcp PORT --json --api 127.0.0.1:0`: (public port, API URL, agent)."""
    ports = port_block()
    async with molehill_process(
        "relay", "--http", "127.0.0.1:0", "--agents", "127.0.0.1:0", "--tcp-ports", str(ports)
    ) as relay:
        agents = (await relay.line_matching(r"agents\s+(ws://\S+)")).group(1)
        async with molehill_process(
            "tcp", str(local_port), "--relay", agents, "--json", "--name", "db",
            "--api", "127.0.0.1:0",
        ) as agent:  # fmt: skip
            api = await agent.json_err_until(lambda r: r.get("event") == "api")
            opened = json.loads(await agent.line())
            assert opened["event"] == "tunnel_open", opened
            yield int(opened["url"].rsplit(":", 1)[1]), api["url"], agent


async def listing(api: str, *extra: str) -> dict:
    done = await run_molehill("connections", "list", "--api", api, "--json", *extra)
    assert done.code == 0, done.err
    return json.loads(done.out)


async def test_connections_list_shows_an_open_connection_then_how_it_closed():
    async with local_service() as local_port, tcp_with_api(local_port) as (port, api, agent):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x" * 5000)
        await writer.drain()
        assert await reader.readexactly(5000) == b"x" * 5000

        data = await listing(api)
        [row] = data["connections"]
        assert row["state"] == "open" and row["closed"] == ""
        assert row["tunnel_name"] == "db"
        assert row["bytes_in"] == 5000 and row["bytes_out"] == 5000
        assert row["client"].startswith("127.0.0.1:")
        [tunnel] = data["tunnels"]
        assert tunnel["name"] == "db" and tunnel["public_url"].endswith(f":{port}")
        assert tunnel["open"] == 1 and tunnel["total"] == 1
        assert tunnel["bytes_in"] == 5000 and tunnel["bytes_out"] == 5000
        assert tunnel["throughput"]["in"] >= 0 and tunnel["throughput"]["out"] >= 0

        text = await run_molehill("connections", "list", "--api", api)
        assert text.code == 0, text.err
        assert "db  tcp://" in text.out and "1 open, 1 total" in text.out
        assert "4.9KB" in text.out and "open" in text.out.splitlines()[-1]

        writer.write_eof()
        tail = await reader.read()
        assert tail == b"\nEOF after 5000\n"
        writer.close()
        record = json.loads(await agent.line())  # the agent's own line for the closed one
        assert record["event"] == "connection" and record["state"] == "closed"

        data = await listing(api, "--tunnel", "db")
        [row] = data["connections"]
        assert row["state"] == "closed" and row["closed"] == "closed"
        assert row["bytes_in"] == 5000 and row["bytes_out"] == 5000 + len(tail)
        assert data["tunnels"][0]["open"] == 0

        text = await run_molehill("connections", "list", "--api", api)
        assert "closed: closed" in text.out and "0 open, 1 total" in text.out

        # ngrok's shape for the tunnel list: proto tcp, a tcp:// public_url, the local address
        status, tunnels = await asyncio.to_thread(
            api_probe.get_json, "127.0.0.1", int(api.rsplit(":", 1)[1]), "/api/tunnels"
        )
        assert status == 200
        [t] = tunnels["tunnels"]
        assert t["proto"] == "tcp" and t["public_url"] == f"tcp://localhost:{port}"
        assert t["config"]["addr"] == f"127.0.0.1:{local_port}"


async def test_the_api_filters_by_tunnel_and_names_an_unknown_one():
    async with local_service() as local_port, tcp_with_api(local_port) as (_, api, _agent):
        port = int(api.rsplit(":", 1)[1])
        status, body = await asyncio.to_thread(
            api_probe.get_json, "127.0.0.1", port, "/api/connections?tunnel_name=db"
        )
        assert status == 200 and body["tunnels"][0]["name"] == "db"
        status, body = await asyncio.to_thread(
            api_probe.get_json, "127.0.0.1", port, "/api/connections?tunnel_name=nope"
        )
        assert status == 404 and "no TCP tunnel named 'nope'" in body["msg"]
        done = await run_molehill("connections", "list", "--api", api, "--tunnel", "nope")
        assert done.code == 1 and "no TCP tunnel named 'nope'" in done.err
        # probing finds it too, past ports where nothing or something else listens
        async with junk_server(JUNK_ANSWERS[0]) as junk:
            found = await asyncio.to_thread(cli_probing, [free_port(), junk, port])
        assert found[0] == 0, found
        assert json.loads(found[1])["tunnels"][0]["name"] == "db"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


JUNK_ANSWERS = [
    # JSON, but not molehill's: ngrok-like tunnels, a near miss, an error
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n"
    b'{"tunnels": []}',
    b"HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n"
    b'{"uri": "/api/connections", "connections": [1], "tunnels": []}  ',
    b"HTTP/1.1 200 OK\r\nContent-Length: 60\r\n\r\n"
    b'{"uri": "/api/connections", "connections": {}, "tunnels": 3}',
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
    b"SSH-2.0-OpenSSH_9.2\r\n",  # not HTTP at all
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n[[[[[",  # broken JSON
    b"HTTP/1.1 200 OK\r\n\r\n" + b"[" * 100_000,  # deep nesting, no length
    b"",  # closes at once
]


@contextlib.asynccontextmanager
async def junk_server(answer: bytes) -> AsyncIterator[int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def cli_probing(ports: list[int], *args: str) -> tuple[int, str, str]:
    """`molehill connections list --json` in this process, probing ``ports`` (not 4040..4050,
    which other molehill processes on this machine may hold)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    saved = api_probe.PROBE_PORTS
    api_probe.PROBE_PORTS = ports
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = molehill_main(["connections", "list", "--json", *args])
    finally:
        api_probe.PROBE_PORTS = saved
    return code, out.getvalue(), err.getvalue()


def test_no_api_running_is_exit_1_with_what_to_do():
    code, out, err = cli_probing([free_port(), free_port()])
    assert code == 1 and out == ""
    assert "no molehill process with a local API is running" in err
    assert "start one with molehill tcp PORT" in err


@pytest.mark.parametrize("answer", JUNK_ANSWERS)
async def test_another_program_on_the_api_port_is_not_taken_for_molehill(answer):
    async with junk_server(answer) as port:
        code, out, err = await asyncio.to_thread(cli_probing, [port])
        assert code == 1 and out == ""
        assert "no molehill process with a local API is running" in err
        fixed = await asyncio.to_thread(cli_probing, [], "--api", f"127.0.0.1:{port}")
        assert fixed[0] == 1 and f"http://127.0.0.1:{port}" in fixed[2]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("ftp://127.0.0.1:1", "plain http://HOST:PORT"),
        ("http://127.0.0.1", "expected http://HOST:PORT"),
        ("127.0.0.1:x", "expected http://HOST:PORT"),
        ("99999", "expected http://HOST:PORT"),
        ("", "expected http://HOST:PORT"),
        (":::", "expected http://HOST:PORT"),
    ],
)
def test_a_bad_api_url_is_refused_with_the_form_to_use(capsys, text, said):
    with pytest.raises(SystemExit) as stop:
        molehill_main(["connections", "list", "--api", text])
    assert stop.value.code == 2
    assert said in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "where"),
    [("4041", ("127.0.0.1", 4041)), ("http://[::1]:4042", ("::1", 4042)),
     ("localhost:4040", ("localhost", 4040))],
)  # fmt: skip
def test_api_urls_in_the_forms_a_user_types(text, where):
    assert api_probe.api_url(text) == where


async def test_a_server_that_drips_its_answer_is_cut_off_at_the_deadline(monkeypatch):
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(100):  # a byte now and then: each read succeeds, the whole never ends
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.2)
        writer.close()

    monkeypatch.setattr(api_probe, "PROBE_DEADLINE", 1.0)
    server = await asyncio.start_server(drip, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        started = asyncio.get_running_loop().time()
        code, out, err = await asyncio.to_thread(cli_probing, [port])
        assert asyncio.get_running_loop().time() - started < 5
        assert code == 1 and out == ""
        assert "no molehill process with a local API is running" in err
        code, out, err = await asyncio.to_thread(cli_probing, [], "--api", f"127.0.0.1:{port}")
        assert code == 1 and out == "" and "no whole answer within 1s" in err
    finally:
        server.close()


async def test_molehill_start_lists_a_tcp_profile_s_connections_next_to_an_http_one(tmp_path):
    async with local_service() as local_port, running_relay(tcp_ports=port_block()) as relay:
        profiles = tmp_path / "profiles.toml"
        profiles.write_text(
            f'[relay]\nurl = "{relay.agents_url}"\n\n'
            f'[profiles.db]\nport = {local_port}\nprotocol = "tcp"\n\n'
            f"[profiles.web]\nport = {local_port}\n"
        )
        async with molehill_process(
            "--profiles", str(profiles), "start", "--all", "--json", "--no-capture",
            "--api", "127.0.0.1:0",
        ) as run:  # fmt: skip
            api = await run.json_err_until(lambda r: r.get("event") == "api")
            urls = {}
            while len(urls) < 2:
                event = json.loads(await run.line())
                if event["event"] == "tunnel_open":
                    urls[event["name"]] = event["url"]
            port = int(urls["db"].rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"k" * 100)
            await reader.readexactly(100)
            data = await listing(api["url"])
            assert [t["name"] for t in data["tunnels"]] == ["db"]  # the HTTP one has none
            [row] = data["connections"]
            assert row["tunnel_name"] == "db" and row["state"] == "open"
            writer.close()
