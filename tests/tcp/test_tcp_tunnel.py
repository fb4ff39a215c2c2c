"""TCP tunnels end to end on loopback: bytes both ways, half-close, ports kept and refused."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from relay.agent import Refused
from relay.events import ConnectionRecord
from relay.wire import codec as p
from tests.relay.helpers import raw_agent
from tests.support.stack import agent_for, running_relay
from tests.tcp.support import echo, local_service, port_block, public_port


async def test_bytes_both_ways_and_half_close_then_a_connection_record():
    ports = port_block()
    async with (
        local_service(echo) as local,
        running_relay(tcp_ports=ports) as relay,
        agent_for(relay, local, protocol="tcp") as tunnel,
    ):
        port = public_port(tunnel)
        assert port in ports
        assert tunnel.agent.url == f"tcp://localhost:{port}"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        payload = os.urandom(3 * 1024 * 1024)  # several windows: flow control does its work
        writer.write(payload)
        await writer.drain()
        writer.write_eof()  # half-close: we still read the reply
        got = await asyncio.wait_for(reader.read(), 20)
        writer.close()
        tail = f"\nEOF after {len(payload)}\n".encode()
        assert got.endswith(tail)
        assert hashlib.sha256(got[: -len(tail)]).digest() == hashlib.sha256(payload).digest()
        for _ in range(100):
            records = [e for e in tunnel.events if isinstance(e, ConnectionRecord)]
            if records:
                break
            await asyncio.sleep(0.02)
        (record,) = records
        assert record.closed == "closed"
        assert record.bytes_in == len(payload)
        assert record.bytes_out == len(got)
        assert record.client.startswith("127.0.0.1:")
        assert record.to_json()["event"] == "connection"


async def test_two_hundred_concurrent_connections_all_complete():
    async with (
        local_service(echo) as local,
        running_relay(tcp_ports=port_block()) as relay,
        agent_for(relay, local, protocol="tcp") as tunnel,
    ):
        port = public_port(tunnel)

        async def one(i: int) -> bool:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            message = f"connection {i} ".encode() * 100
            writer.write(message)
            writer.write_eof()
            got = await reader.read()
            writer.close()
            return got == message + f"\nEOF after {len(message)}\n".encode()

        results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(200))), 60)
        assert all(results)
        assert sum(results) == 200


async def test_reconnect_keeps_the_port_and_other_agents_are_refused_it():
    ports = port_block()
    async with (
        local_service(echo) as local,
        running_relay(tcp_ports=ports, lease=30.0) as relay,
        agent_for(relay, local, protocol="tcp", backoff_first=0.05) as tunnel,
    ):
        port = public_port(tunnel)
        name = tunnel.agent.name
        assert tunnel.agent.link is not None
        tunnel.agent.link.fail("test: the connection was lost")  # not a deliberate stop
        for _ in range(200):
            await asyncio.sleep(0.02)
            if tunnel.agent.state == "online" and tunnel.agent.link is not None:
                break
        assert tunnel.agent.state == "online"
        assert tunnel.agent.name == name
        assert public_port(tunnel) == port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"still here")
        writer.write_eof()
        assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"still here")
        writer.close()
        # A second agent asking for the taken port is told so.
        with pytest.raises(Refused) as refused:
            async with agent_for(relay, local, protocol="tcp", remote_port=port):
                pass
        assert refused.value.code == "port_taken"
        assert str(port) in refused.value.message


async def test_requested_port_inside_and_outside_the_range():
    ports = port_block()
    async with local_service(echo) as local, running_relay(tcp_ports=ports) as relay:
        with pytest.raises(Refused) as refused:
            async with agent_for(relay, local, protocol="tcp", remote_port=ports.last + 1):
                pass
        assert refused.value.code == "port_out_of_range"
        assert str(ports) in refused.value.message
        wanted = ports.first + 7
        async with agent_for(relay, local, protocol="tcp", remote_port=wanted) as tunnel:
            assert public_port(tunnel) == wanted


async def test_a_relay_without_a_range_refuses_tcp_clearly():
    async with local_service(echo) as local, running_relay() as relay:
        with pytest.raises(Refused) as refused:
            async with agent_for(relay, local, protocol="tcp"):
                pass
        assert refused.value.code == "tcp_disabled"
        assert "--tcp-ports" in refused.value.message


async def test_http_requests_do_not_reach_a_tcp_tunnel():
    async with (
        local_service(echo) as local,
        running_relay(tcp_ports=port_block()) as relay,
        agent_for(relay, local, protocol="tcp") as tunnel,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.http_port)
        host = f"{tunnel.agent.name}.localhost"
        writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        writer.close()
        assert head.startswith(b"HTTP/1.1 404")


async def test_the_local_service_down_closes_the_visitor_and_says_why():
    async with local_service(echo) as local:
        pass  # closed: nothing listens there now
    async with (
        running_relay(tcp_ports=port_block()) as relay,
        agent_for(relay, local, protocol="tcp") as tunnel,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", public_port(tunnel))
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        for _ in range(100):
            records = [e for e in tunnel.events if isinstance(e, ConnectionRecord)]
            if records:
                break
            await asyncio.sleep(0.02)
        assert records[0].closed == "connect_failed"


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"protocol": "tcp", "remote_port": 0}, "bad_port"),
        ({"protocol": "tcp", "remote_port": -1}, "bad_port"),
        ({"protocol": "tcp", "remote_port": 70000}, "bad_port"),
        ({"protocol": "tcp", "remote_port": "5432"}, "bad_port"),
        ({"protocol": "tcp", "remote_port": True}, "bad_port"),
        ({"protocol": "tcp", "remote_port": 2**64 - 1}, "bad_port"),
        ({"protocol": "udp"}, "bad_options"),
        ({"protocol": ["tcp"]}, "bad_options"),
        ({"remote_port": 20000}, "bad_options"),
        ({"protocol": "tcp", "basic_auth": "a:b"}, "bad_options"),
    ],
)
async def test_hostile_tcp_hellos_are_refused_with_a_reason(options, code):
    async with running_relay(tcp_ports=port_block()) as relay:
        async with raw_agent(relay, "", options=options) as (_, answer):
            assert isinstance(answer, p.Error), answer
            assert answer.code == code
            assert len(answer.message) > 20
        assert not relay.tcp.listeners  # nothing was opened for it
