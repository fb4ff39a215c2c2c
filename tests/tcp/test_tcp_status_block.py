"""`molehill tcp` on a real pseudo-terminal: the status block shows TCP connections (total,
open), live throughput each way and the latest closed connections instead of HTTP figures."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from relay.agent import Agent, AgentSettings
from relay.events import ConnectionRecord, RequestRecord
from tests.support.cli import molehill_process
from tests.support.stack import running_relay
from tests.support.terminal import Terminal
from tests.tcp.support import local_service, port_block
from tui.status_block import StatusBlock


def row(lines: list[str], label: str) -> str:
    return next((line for line in lines if line.startswith(label)), "")


def tcp_figures(lines: list[str]) -> list[str]:
    """The values under "Connections  ttl opn in/s out/s"."""
    at = next(i for i, line in enumerate(lines) if line.endswith("in/s        out/s"))
    return lines[at + 1].split()


@pytest.mark.parametrize(("width", "height"), [(80, 24), (120, 40)])
async def test_tcp_on_a_terminal_shows_connections_and_throughput(width, height):
    term = Terminal(width, height)
    try:
        async with (
            local_service() as local_port,
            running_relay(tcp_ports=port_block()) as relay,
            molehill_process(
                "tcp", str(local_port), "--relay", relay.agents_url, "--no-api",
                stdout=term.slave,
            ) as agent,
        ):  # fmt: skip
            lines = await term.wait_for(lambda ls: "online" in row(ls, "Tunnel status"))
            where, arrow, target = row(lines, "Forwarding").split()[1:]
            assert where.startswith("tcp://localhost:") and arrow == "->"
            assert target == f"127.0.0.1:{local_port}"
            assert "p50" not in row(lines, "Connections")  # no HTTP figures for a TCP tunnel
            assert "TCP Connections" in lines and "HTTP Requests" not in lines
            assert tcp_figures(lines) == ["0", "0", "0B/s", "0B/s"]

            port = int(where.rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            sending = asyncio.create_task(_keep_sending(reader, writer))
            try:
                lines = await term.wait_for(
                    lambda ls: (
                        tcp_figures(ls)[:2] == ["1", "1"]
                        and tcp_figures(ls)[2] != "0B/s"
                        and tcp_figures(ls)[3] != "0B/s"
                    )
                )
                rate_in, rate_out = tcp_figures(lines)[2:]
                assert rate_in.endswith("B/s") and rate_out.endswith("B/s")
            finally:
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sending
            writer.write_eof()
            await reader.read()
            writer.close()
            lines = await term.wait_for(lambda ls: tcp_figures(ls)[:2] == ["1", "0"])
            lines = await term.wait_for(lambda ls: any(" TCP " in line for line in ls))
            [closed] = [line for line in lines if " TCP " in line]
            assert "127.0.0.1:" in closed and "closed" in closed
            assert len(lines) <= height
            assert all(len(line) < width for line in lines)
            assert await agent.terminate() == 0
    finally:
        term.close()


async def _keep_sending(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A steady trickle both ways (the echo sends it back) until cancelled."""
    while True:
        writer.write(b"t" * 4096)
        await writer.drain()
        await reader.readexactly(4096)
        await asyncio.sleep(0.02)


def test_a_block_with_http_and_tcp_tunnels_shows_both_kinds_of_figures():
    class Screen:
        pending = 0

        def write(self, text: str) -> None:
            pass

    block = StatusBlock(Screen(), -1, "ws://relay")
    web = block.hook("web", Agent(AgentSettings(local_port=3000)))
    db = block.hook("db", Agent(AgentSettings(local_port=5432, protocol="tcp")))
    web(RequestRecord(0.0, "GET", "/page", 200, 5.0, 100, 200, "127.0.0.1", 1))
    db(ConnectionRecord(0.0, "127.0.0.1:4000", 1, 30.0, 10, 20, "closed"))
    lines = block.lines(40)
    assert row(lines, "Connections").split()[1:] == ["ttl", "opn", "rt1", "rt5", "p50", "p90"]
    assert row(lines, "TCP connections").split()[2:] == ["ttl", "opn", "in/s", "out/s"]
    assert "Requests and TCP Connections" in lines
    assert any("[web]" in line and "/page" in line for line in lines)
    assert any("[db]" in line and " TCP " in line and "127.0.0.1:4000" in line for line in lines)
    assert any(line.endswith("-> 127.0.0.1:5432") for line in lines)  # TCP: no http:// target
