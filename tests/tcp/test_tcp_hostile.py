"""TCP tunnels under hostile or careless peers: floods, address rules, idle and stalled
connections, agents that stop reading, ports while their agent is away."""

from __future__ import annotations

import asyncio
import os

import pytest

from relay.events import ConnectionRecord
from relay.wire import codec as p
from tests.relay.helpers import closed_within, raw_agent
from tests.support.stack import agent_for, lose_connection, running_relay
from tests.tcp.support import echo, local_service, port_block, public_port


async def _echoes(port: int, message: bytes = b"ping") -> bool:
    """Whether a connection to ``port`` gets its message echoed (False: closed on us)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(message)
        writer.write_eof()
        got = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    except OSError:  # reset, or closed before the write: refused
        return False
    return got.startswith(message)


async def test_a_flood_over_the_rate_limit_is_cut_and_the_tunnel_still_serves():
    async with (
        local_service(echo) as local,
        running_relay(tcp_ports=port_block(), rate=5.0, burst=5.0) as relay,
        agent_for(relay, local, protocol="tcp") as tunnel,
    ):
        port = public_port(tunnel)
        results = await asyncio.gather(*(_echoes(port) for _ in range(60)))
        served = sum(results)
        assert 1 <= served <= 15, served  # 5 at once, then 5 a second
        assert not relay.tcp.connections or len(relay.tcp.connections) <= 15
        await asyncio.sleep(1.0)  # the bucket refills
        assert await _echoes(port)


async def test_connections_per_address_are_limited():
    async with (
        local_service(echo) as local,
        running_relay(tcp_ports=port_block(), connections_per_ip=3) as relay,
        agent_for(relay, local, protocol="tcp") as tunnel,
    ):
        port = public_port(tunnel)
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        for reader, writer in held:
            writer.write(b"x")
            assert await asyncio.wait_for(reader.readexactly(1), 5) == b"x"
        extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", port)
        assert await closed_within(extra_reader, 5) == b""
        extra_writer.close()
        for _, writer in held:
            writer.close()


async def test_deny_rules_turn_connections_away_before_the_agent_hears_of_them():
    async with (
        local_service(echo) as local,
        running_relay(tcp_ports=port_block()) as relay,
        agent_for(relay, local, protocol="tcp", deny=("127.0.0.0/8",)) as tunnel,
    ):
        assert not await _echoes(public_port(tunnel))
        await asyncio.sleep(0.1)
        assert not [e for e in tunnel.events if isinstance(e, ConnectionRecord)]
        assert relay.tcp.connections == set()


async def test_an_idle_connection_is_closed_after_the_tcp_idle_timeout():
    async with (
        local_service(echo) as local,
        running_relay(tcp_ports=port_block(), tcp_idle_timeout=1.0) as relay,
        agent_for(relay, local, protocol="tcp") as tunnel,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", public_port(tunnel))
        writer.write(b"hi")
        assert await asyncio.wait_for(reader.readexactly(2), 5) == b"hi"
        await closed_within(reader, 5)
        writer.close()
        for _ in range(100):
            records = [e for e in tunnel.events if isinstance(e, ConnectionRecord)]
            if records:
                break
            await asyncio.sleep(0.02)
        assert records[0].closed == "reset: idle_timeout"


async def test_the_port_is_held_while_the_agent_is_away_and_freed_when_the_lease_ends():
    async with (
        local_service(echo) as local,
        running_relay(tcp_ports=port_block(), lease=1.0) as relay,
    ):
        async with agent_for(relay, local, protocol="tcp") as tunnel:
            port = public_port(tunnel)
            await lose_connection(tunnel)  # a lost connection holds the port; a stop frees it
        # Away: the port still listens (nobody else may take it) but serves no one.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await closed_within(reader, 5) == b""
        writer.close()
        await asyncio.sleep(2.0)
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        assert not relay.tcp.listeners


async def test_a_deliberate_stop_frees_the_port_at_once():
    async with (
        local_service(echo) as local,
        running_relay(tcp_ports=port_block(), lease=60.0) as relay,
    ):
        async with agent_for(relay, local, protocol="tcp") as tunnel:
            port = public_port(tunnel)
        for _ in range(50):  # the GOAWAY travels to the relay, which closes the listener
            if not relay.tcp.listeners:
                break
            await asyncio.sleep(0.05)
        assert not relay.tcp.listeners
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)


async def test_an_agent_that_stops_reading_costs_the_relay_one_window():
    async with running_relay(tcp_ports=port_block()) as relay:
        options = {"protocol": "tcp"}
        async with raw_agent(relay, "", options=options, max_queue=1, close_timeout=0.5) as (
            _ws,
            welcome,
        ):
            assert isinstance(welcome, p.Welcome)
            port = int(welcome.url.rsplit(":", 1)[1])
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(os.urandom(16 * 1024 * 1024))  # the agent never grants any of it
            await asyncio.sleep(1.5)
            (conn,) = relay.tcp.connections
            session = conn.session
            assert session is not None
            window = min(p.DEFAULT_WINDOW, relay.settings.window * 4)
            # What the relay took from the visitor: the window, and at most one read beyond it.
            assert conn.bytes_from_socket <= window + 512 * 1024
            assert sum(len(chunk) for chunk in conn.held) <= 512 * 1024
            assert writer.transport.get_write_buffer_size() > 0  # the visitor is stalled
            writer.transport.abort()
