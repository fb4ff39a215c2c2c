"""TCP figures: the relay's /metrics (scraped over HTTP) and the agent's connection ledger."""

from __future__ import annotations

import asyncio
import time

import httpx

from relay.agent.tcp import TcpLedger
from tests.relay.helpers import metrics_dict
from tests.support.stack import agent_for, running_relay
from tests.support.waiting import eventually
from tests.tcp.support import echo, local_service, port_block, public_port


async def scrape(client: httpx.AsyncClient) -> dict[str, float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return metrics_dict(response.text)


async def test_metrics_count_tcp_tunnels_connections_bytes_and_refusals():
    async with (
        local_service(echo) as local,
        running_relay(tcp_ports=port_block()) as relay,
        agent_for(relay, local, protocol="tcp") as tunnel,
        agent_for(relay, local, protocol="tcp", deny=("127.0.0.0/8",)) as denied,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.agents_port}") as scraper,
    ):
        m = await scrape(scraper)
        assert m["molehill_tcp_tunnels"] == 2
        assert m["molehill_tcp_connections"] == 0
        assert m['molehill_tcp_refused_total{reason="allow_deny"}'] == 0

        reader, writer = await asyncio.open_connection("127.0.0.1", public_port(tunnel))
        writer.write(b"y" * 3000)
        assert await reader.readexactly(3000) == b"y" * 3000
        m = await scrape(scraper)
        assert m["molehill_tcp_connections"] == 1
        assert m["molehill_tcp_connections_total"] == 1
        assert m['molehill_tcp_bytes_total{direction="in"}'] == 3000  # open ones count live
        assert m['molehill_tcp_bytes_total{direction="out"}'] == 3000

        writer.write_eof()
        tail = await reader.read()
        writer.close()
        await eventually(lambda: not relay.tcp.connections)
        m = await scrape(scraper)
        assert m["molehill_tcp_connections"] == 0
        assert m['molehill_tcp_bytes_total{direction="in"}'] == 3000
        assert m['molehill_tcp_bytes_total{direction="out"}'] == 3000 + len(tail)
        assert m['molehill_bytes_total{direction="in"}'] >= 3000

        for _ in range(2):
            _, turned_away = await asyncio.open_connection("127.0.0.1", public_port(denied))
            turned_away.close()
        await eventually(lambda: relay.tcp.refused.get("allow_deny") == 2)
        m = await scrape(scraper)
        assert m['molehill_tcp_refused_total{reason="allow_deny"}'] == 2
        assert m['molehill_tcp_refused_total{reason="per_ip"}'] == 0
        assert m["molehill_tcp_connections_total"] == 1


async def test_the_ledger_keeps_open_connections_and_a_bounded_number_of_closed_ones():
    async with (
        local_service(echo) as local,
        running_relay(tcp_ports=port_block()) as relay,
        agent_for(relay, local, protocol="tcp") as tunnel,
    ):
        ledger = tunnel.agent.tcp = TcpLedger(keep=3)
        port = public_port(tunnel)
        held = await asyncio.open_connection("127.0.0.1", port)
        for n in range(6):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"z" * (n + 1))
            writer.write_eof()
            await reader.read()
            writer.close()
        await eventually(lambda: len(ledger.open) == 1 and ledger.total == 7)
        listed = ledger.listing()
        assert [r.state for r in listed] == ["open", "closed", "closed", "closed"]
        assert [r.bytes_in for r in listed[1:]] == [6, 5, 4]  # newest first, older ones dropped
        moved_in, _ = ledger.bytes_moved()
        assert moved_in == sum(range(1, 7))  # dropped from the list, still counted
        held[1].close()
        await eventually(lambda: not ledger.open)


async def test_throughput_is_bytes_per_second_over_the_last_seconds():
    async with (
        local_service(echo) as local,
        running_relay(tcp_ports=port_block()) as relay,
        agent_for(relay, local, protocol="tcp") as tunnel,
    ):
        ledger = tunnel.agent.tcp
        start = time.monotonic()
        assert ledger.throughput(start) == (0.0, 0.0)
        reader, writer = await asyncio.open_connection("127.0.0.1", public_port(tunnel))
        writer.write(b"w" * 10_000)
        await reader.readexactly(10_000)
        await eventually(lambda: ledger.bytes_moved() == (10_000, 10_000))
        rate_in, rate_out = ledger.throughput(start + 2.0)
        assert rate_in == rate_out == 5_000.0  # 10 kB over the 2 s since the first sample
        # nothing more moves: once the window has passed, the rate falls to zero
        ledger.throughput(start + 8.0)
        assert ledger.throughput(start + 14.0) == (0.0, 0.0)
        writer.close()
