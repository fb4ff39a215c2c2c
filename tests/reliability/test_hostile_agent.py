"""A hostile agent, frame by frame: each malicious shape has a definite outcome. The relay drops
the offender (websocket close 1002, or 1009 for oversized messages) without an exception escaping
into its event loop, its visitors are not left hanging, and a good tunnel on the same relay
answers throughout. (tests/integration/test_agent_protocol.py has the basic cases: text
messages, bytes that are not msgpack, a relay's frame, DATA for a stream never opened and one
DATA frame beyond the window; this file covers the rest. test_fuzz.py throws random ones.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgpack
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from relay.server import Relay
from relay.wire import codec as p
from tests.reliability.tools import drain_until_closed, eventually, get
from tests.support.stack import Tunnel, agent_for, open_raw, raw_request, running_relay

PING = 777


@asynccontextmanager
async def relay_with_bystander(app_port: int, **overrides: object) -> AsyncIterator[Tunnel]:
    async with running_relay(**overrides) as relay, agent_for(relay, app_port, "bystander") as t:
        yield t


async def bystander_is_fine(t: Tunnel) -> None:
    resp = await get(t.relay.http_port, t.host)
    assert resp.status == 200 and resp.body == b"hello from the local app"
    assert t.agent.state == "online"


class Rogue:
    """A hand-driven agent connection."""

    def __init__(self, ws: ClientConnection, relay: Relay) -> None:
        self.ws = ws
        self.relay = relay
        self.visitors: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def send(self, *frames: p.Frame) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(p.encode_message(*frames))

    async def send_raw(self, message: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(message)

    async def frames(self, timeout: float = 3.0) -> list[p.Frame]:
        async with asyncio.timeout(timeout):
            return p.decode_all(await self.ws.recv())

    async def hello(self, name: str = "rogue", window: int = p.DEFAULT_WINDOW) -> p.Welcome:
        await self.send(p.Hello(p.VERSION, name, "", "", window))
        (welcome,) = await self.frames()
        assert isinstance(welcome, p.Welcome), welcome
        return welcome

    async def visitor(self, path: str = "/") -> p.Open:
        """A visitor of the rogue tunnel sends a request; return the OPEN the relay sent us."""
        reader, writer = await open_raw(self.relay.http_port)
        writer.write(raw_request(f"rogue.localhost:{self.relay.http_port}", path))
        self.visitors.append((reader, writer))
        while True:
            for frame in await self.frames():
                if isinstance(frame, p.Open):
                    return frame

    async def outcome(self, timeout: float = 2.0) -> int | None:
        """None if the relay still answers a PING, else the close code it sent."""
        await self.send(p.Ping(PING))
        try:
            async with asyncio.timeout(timeout):
                while True:
                    message = await self.ws.recv()
                    if isinstance(message, bytes) and any(
                        isinstance(f, p.Pong) and f.payload == PING for f in p.decode_all(message)
                    ):
                        return None
        except ConnectionClosed:
            pass
        assert self.ws.close_code is not None
        return self.ws.close_code

    def close_visitors(self) -> None:
        for _, writer in self.visitors:
            writer.close()


@asynccontextmanager
async def rogue(relay: Relay) -> AsyncIterator[Rogue]:
    async with ws_connect(relay.agents_url, max_size=None, close_timeout=1) as ws:
        agent = Rogue(ws, relay)
        try:
            yield agent
        finally:
            agent.close_visitors()


async def dropped(t: Tunnel, agent: Rogue, code: int = 1002) -> None:
    """The relay closed the rogue's link with ``code``; the rogue's session is gone."""
    assert await agent.outcome() == code
    await eventually(lambda: t.relay.sessions == {t.relay.tunnels["bystander"]}, what="cleanup")


# -- before and around HELLO ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(p.Data(1, b"x"), id="data"),
        pytest.param(p.Credit(1, 100), id="credit"),
        pytest.param(p.End(1), id="end"),
        pytest.param(p.Reset(1, "x", "y"), id="reset"),
        pytest.param(p.Open(1, "1.2.3.4", 5), id="open"),
        pytest.param(p.GoAway("bye"), id="goaway"),
        pytest.param(p.Error("x", "y"), id="error"),
    ],
)
async def test_frames_before_hello_are_a_protocol_error(app_port, loop_errors, frame):
    async with relay_with_bystander(app_port) as t, rogue(t.relay) as agent:
        await agent.send(frame)
        await dropped(t, agent)
        await bystander_is_fine(t)
    assert not loop_errors


async def test_pings_do_not_stand_in_for_a_hello(app_port, loop_errors):
    async with relay_with_bystander(app_port, hello_timeout=0.3) as t, rogue(t.relay) as agent:
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(2):
                while True:
                    await agent.ws.send(p.encode_message(p.Ping(1)))
                    await asyncio.sleep(0.05)
        assert time.monotonic() - started < 1.0
        assert agent.ws.close_code == 1002
        await bystander_is_fine(t)
    assert not loop_errors


async def test_a_second_hello_is_a_protocol_error_and_the_name_is_held(app_port, loop_errors):
    async with relay_with_bystander(app_port, lease=30) as t, rogue(t.relay) as agent:
        await agent.hello()
        await agent.send(p.Hello(p.VERSION, "another", "", "", p.DEFAULT_WINDOW))
        await dropped(t, agent)
        assert "rogue" in t.relay.leases and "another" not in t.relay.tunnels
        await bystander_is_fine(t)
    assert not loop_errors


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param([p.VERSION, 7, "", "", p.DEFAULT_WINDOW, {}], id="name-not-text"),
        pytest.param([p.VERSION, "x", "", "", "big", {}], id="window-not-int"),
        pytest.param([p.VERSION, "x", "", "", p.DEFAULT_WINDOW, []], id="options-not-map"),
        pytest.param([p.VERSION, "x", "", "", p.DEFAULT_WINDOW, {}, 1], id="extra-field"),
        pytest.param([p.VERSION, "x" * 5000, "", "", p.DEFAULT_WINDOW, {}], id="huge-name"),
        pytest.param([-1, "x", "", "", p.DEFAULT_WINDOW, {}], id="negative-version"),
    ],
)
async def test_malformed_hello_is_a_protocol_error(app_port, loop_errors, fields):
    async with relay_with_bystander(app_port) as t, rogue(t.relay) as agent:
        await agent.send_raw(msgpack.packb([[p.HELLO, 0, *fields]], use_bin_type=True))
        await dropped(t, agent)
        assert set(t.relay.tunnels) == {"bystander"}
        await bystander_is_fine(t)
    assert not loop_errors


async def test_an_agent_of_the_previous_release_is_served_or_told_to_upgrade(app_port, loop_errors):
    async with relay_with_bystander(app_port) as t, rogue(t.relay) as agent:
        old_hello = [p.HELLO, 0, p.VERSION, "old", "", "", p.DEFAULT_WINDOW]
        await agent.send_raw(msgpack.packb([old_hello], use_bin_type=True))
        try:
            (answer,) = await agent.frames()
        except ConnectionClosed:
            answer = None
        assert isinstance(answer, p.Welcome) or (
            isinstance(answer, p.Error) and answer.code == "version"
        ), (answer, agent.ws.close_code, agent.ws.close_reason)
        await bystander_is_fine(t)
    assert not loop_errors


# -- streams ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(p.Data(7, b"x"), id="data"),
        pytest.param(p.Credit(7, 100), id="credit"),
        pytest.param(p.End(7), id="end"),
        pytest.param(p.Reset(7, "x", "y"), id="reset"),
        pytest.param(p.Data(p.MAX_STREAM_ID, b"x"), id="data-max-id"),
    ],
)
async def test_frames_for_streams_never_opened_are_a_protocol_error(app_port, loop_errors, frame):
    async with relay_with_bystander(app_port) as t, rogue(t.relay) as agent:
        await agent.hello()
        await agent.send(frame)
        await dropped(t, agent)
        await bystander_is_fine(t)
    assert not loop_errors


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(msgpack.packb([[p.DATA, 0, b"x"]]), id="data-on-stream-0"),
        pytest.param(msgpack.packb([[p.DATA, -1, b"x"]]), id="negative-stream"),
        pytest.param(msgpack.packb([[p.DATA, 2**31, b"x"]]), id="stream-beyond-max"),
        pytest.param(msgpack.packb([[p.CREDIT, 1, 0]]), id="credit-zero"),
        pytest.param(msgpack.packb([[p.CREDIT, 1, p.MAX_WINDOW + 1]]), id="credit-too-big"),
        pytest.param(msgpack.packb([[p.DATA, 1, "text"]]), id="data-as-text"),
        pytest.param(msgpack.packb([[p.RESET, 1, "x", "y" * 5000]]), id="huge-reset-text"),
        pytest.param(msgpack.packb([[99, 1]]), id="unknown-frame-type"),
        pytest.param(msgpack.packb([]), id="empty-batch"),
        pytest.param(msgpack.packb({"a": 1}), id="map-not-batch"),
    ],
)
async def test_malformed_frames_on_a_live_stream_are_a_protocol_error(
    app_port, loop_errors, message
):
    async with relay_with_bystander(app_port) as t, rogue(t.relay) as agent:
        await agent.hello()
        await agent.visitor()
        await agent.send_raw(message)
        await dropped(t, agent)
        # The visitor is not left hanging: it gets the "offline" page or a closed connection.
        reader, _ = agent.visitors[0]
        async with asyncio.timeout(2):
            assert await drain_until_closed(reader) in ("eof", "reset")
        await bystander_is_fine(t)
    assert not loop_errors


async def test_frames_for_a_stream_that_just_ended_are_ignored(app_port, loop_errors):
    """Late frames for a stream the relay closed a moment ago are normal (they crossed on the
    wire), not hostile: the link stays up."""
    async with relay_with_bystander(app_port) as t, rogue(t.relay) as agent:
        await agent.hello()
        opened = await agent.visitor()
        sid = opened.stream
        response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        await agent.send(p.Data(sid, response), p.End(sid))
        reader, writer = agent.visitors[0]
        async with asyncio.timeout(2):
            assert await reader.read() == response
        writer.close()  # both sides ended: the relay forgets the stream
        await eventually(lambda: not t.relay.tunnels["rogue"].streams, what="the stream to end")
        await agent.send(p.Data(sid, b"late"), p.Credit(sid, 10), p.End(sid), p.Reset(sid, "", ""))
        assert await agent.outcome() is None
        await bystander_is_fine(t)
    assert not loop_errors


async def test_credit_overflow_on_a_live_stream(app_port, loop_errors):
    async with relay_with_bystander(app_port) as t, rogue(t.relay) as agent:
        await agent.hello()
        opened = await agent.visitor()
        await agent.send(p.Credit(opened.stream, p.MAX_WINDOW))
        await dropped(t, agent)
        reader, _ = agent.visitors[0]
        async with asyncio.timeout(1):
            assert await drain_until_closed(reader) in ("eof", "reset")
        await bystander_is_fine(t)
    assert not loop_errors


async def test_data_beyond_the_window_over_many_frames(app_port, loop_errors):
    """A visitor who reads nothing: once the socket backs up the relay grants no more credit,
    and an agent that keeps sending (each frame small) overruns the window and is dropped."""
    async with relay_with_bystander(app_port) as t, rogue(t.relay) as agent:
        await agent.hello()
        opened = await agent.visitor()  # which never reads
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n"
        await agent.send(p.Data(opened.stream, head))
        block = b"x" * 32768
        for _ in range(2000):  # at most 64 MB: far beyond the window plus the socket buffers
            try:
                await agent.ws.send(p.encode_message(p.Data(opened.stream, block)))
            except ConnectionClosed:
                break
            await asyncio.sleep(0)
        # 1006 when the relay's close frame is lost to the reset of a socket closed with the
        # flood still unread in it: dropped either way.
        assert await agent.outcome() in (1002, 1006)
        await bystander_is_fine(t)
    assert not loop_errors


# -- oversized and malicious messages -----------------------------------------------------------

CAP = 1 << 20  # the relay's message cap in these tests (max_message)


async def test_a_message_over_the_cap_closes_with_1009(app_port, loop_errors):
    async with relay_with_bystander(app_port, max_message=CAP) as t, rogue(t.relay) as agent:
        await agent.hello()
        await agent.send_raw(p.encode_message(p.Data(1, b"x" * CAP)))
        await dropped(t, agent, 1009)
        await bystander_is_fine(t)
    assert not loop_errors


async def test_a_fragmented_message_over_the_cap_closes_with_1009(app_port, loop_errors):
    async with relay_with_bystander(app_port, max_message=CAP) as t, rogue(t.relay) as agent:
        await agent.hello()
        fragments = [b"\x91"] + [b"\x00" * 65536] * (CAP // 65536 + 2)
        with contextlib.suppress(ConnectionClosed):
            await agent.ws.send(fragments)
        await dropped(t, agent, 1009)
        await bystander_is_fine(t)
    assert not loop_errors


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(b"\xdd\xff\xff\xff\xff", id="array-claims-4G-items"),
        pytest.param(b"\xdf\xff\xff\xff\xff", id="map-claims-4G-entries"),
        pytest.param(b"\x91\x93\x05\x01\xc6\xff\xff\xff\xff", id="bin-claims-4GB"),
        pytest.param(b"\x91" * 100_000, id="nested-100k-deep"),
        pytest.param(b"\x91\xc7\x01\x05x", id="ext-type"),
        pytest.param(b"\x91\x93\x05\x01\xc4\x05abc", id="truncated-bin"),
    ],
)
async def test_msgpack_bombs_are_refused_at_once(app_port, loop_errors, message):
    async with relay_with_bystander(app_port) as t, rogue(t.relay) as agent:
        await agent.hello()
        started = time.monotonic()
        await agent.send_raw(message)
        await dropped(t, agent)
        assert time.monotonic() - started < 1.0
        await bystander_is_fine(t)
    assert not loop_errors


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(p.Open(1, "1.2.3.4", 5), id="open"),
        pytest.param(p.Error("x", "y"), id="error"),
    ],
)
async def test_relay_only_frames_from_an_agent_are_a_protocol_error(app_port, loop_errors, frame):
    async with relay_with_bystander(app_port) as t, rogue(t.relay) as agent:
        await agent.hello()
        await agent.send(frame)
        await dropped(t, agent)
        await bystander_is_fine(t)
    assert not loop_errors


async def test_an_agent_goaway_frees_its_name_and_a_second_one_drops_it(app_port, loop_errors):
    async with relay_with_bystander(app_port, lease=30) as t, rogue(t.relay) as agent:
        await agent.hello()
        await agent.send(p.GoAway("stopping"))
        await eventually(lambda: "rogue" not in t.relay.tunnels, what="the name freed")
        assert "rogue" not in t.relay.leases
        # Still connected, it gets no visitors: they see the plain "no tunnel" page.
        page = await get(t.relay.http_port, f"rogue.localhost:{t.relay.http_port}")
        assert page.status == 404
        await agent.send(p.GoAway("again"))
        await dropped(t, agent)
        assert "rogue" not in t.relay.leases  # nothing to hold: it said it was leaving
        await bystander_is_fine(t)
    assert not loop_errors


# -- found by the fuzzer (fixed in relay/bridge.py, public.py, session.py, link.py) --------------


async def test_data_after_end_is_a_protocol_error(app_port, loop_errors):
    async with relay_with_bystander(app_port) as t, rogue(t.relay) as agent:
        await agent.hello()
        opened = await agent.visitor()
        sid = opened.stream
        response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        await agent.send(p.Data(sid, response), p.End(sid), p.Data(sid, b"more"))
        reader, _ = agent.visitors[0]
        async with asyncio.timeout(2):
            assert await reader.read() == response  # what came before END, then the end
        await dropped(t, agent)
        await bystander_is_fine(t)
    assert not loop_errors


async def test_every_visitor_ends_when_the_agent_drops_after_an_early_end(app_port, loop_errors):
    async with relay_with_bystander(app_port) as t, rogue(t.relay) as agent:
        await agent.hello()
        first = await agent.visitor()
        await agent.visitor()
        await agent.send(p.End(first.stream))  # the local app closed without answering
        await asyncio.sleep(0.1)
        agent.ws.transport.abort()  # and then the agent's connection drops
        for reader, _ in agent.visitors:
            async with asyncio.timeout(1):
                assert await drain_until_closed(reader) in ("eof", "reset")
        await bystander_is_fine(t)
    assert not loop_errors


async def test_an_agent_that_stops_reading_cannot_make_the_relay_buffer_without_bound(
    app_port, loop_errors
):
    async with relay_with_bystander(app_port) as t, rogue(t.relay) as agent:
        await agent.hello(window=p.MAX_WINDOW)
        session = t.relay.tunnels["rogue"]
        agent.ws.transport.pause_reading()  # the rogue reads nothing from now on
        _, writer = await open_raw(t.relay.http_port)
        size = 200_000_000
        writer.write(
            raw_request(
                f"rogue.localhost:{t.relay.http_port}",
                "/upload",
                "POST",
                [("Content-Length", str(size))],
            )
        )
        block = b"u" * (1 << 20)

        async def upload() -> None:
            for _ in range(size // len(block)):
                writer.write(block)
                await writer.drain()

        uploading = asyncio.create_task(upload())
        try:
            await asyncio.sleep(2.0)
            buffered = session.transport.get_write_buffer_size()
            assert buffered <= 16 * 1024 * 1024, f"{buffered} bytes buffered for one stream"
            await bystander_is_fine(t)
        finally:
            uploading.cancel()
            writer.close()
            agent.ws.transport.abort()
    assert not loop_errors
