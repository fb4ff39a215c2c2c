"""A hostile relay against the agent's resources: more streams than the agent allows, requests
pipelined faster than the app answers, and frames that break the protocol (msgpack bombs, data
beyond the window, floods). The agent's memory and descriptors stay bounded, and a broken
protocol drops the link with a reason, nothing escaping into the agent's loop. (The relay's side
of the same is tests/reliability/test_hostile_agent.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import time
import tracemalloc

import pytest
from websockets.exceptions import ConnectionClosed

from relay.events import Reconnecting, TunnelOpen
from relay.wire import codec as p
from tests.security.test_hostile_relay import agent_to, local_app, shown
from tests.support.fake_relay import Agentside, fake_relay, welcome


async def test_opens_beyond_the_agents_limit_are_reset_not_dialled():
    """Before: every OPEN became a connection to the local app, as many as the relay sent
    (each a descriptor and up to a window of buffered bytes): a relay could spend the
    dashboard's open files, which its store and its other tunnels need too."""
    limit, sent = 5, 40

    async def script(side: Agentside) -> None:
        await side.send(welcome())
        await side.send(*(p.Open(sid, "203.0.113.9", 4000 + sid) for sid in range(1, sent + 1)))
        await side.until_closed()

    async with (
        local_app() as (app, port),
        fake_relay(script) as relay,
        agent_to(relay.url, port, max_streams=limit) as run,
    ):
        await run.event(TunnelOpen)
        side = relay.sessions[0]

        async def resets() -> list[p.Frame]:
            return [f for f in side.received if isinstance(f, p.Reset)]

        async with asyncio.timeout(5):
            while len(await resets()) < sent - limit:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert app.connections == limit
        assert len(run.agent.link.streams) == limit  # type: ignore[union-attr]
        assert {f.code for f in await resets()} == {"agent_busy"}  # type: ignore[attr-defined]
        assert run.agent.state == "online"


def nested_arrays(depth: int) -> bytes:
    """A msgpack bomb: arrays inside arrays, each short, millions of them in 16 MiB."""
    return b"\x91" * depth + b"\x90"


PROTOCOL_BREAKS = {
    "msgpack-bomb": [nested_arrays(4 * 1024 * 1024)],
    "too-many-frames": [b"\xdd\x00\x10\x00\x00" + p.encode(p.End(1)) * 4096],
    "data-beyond-window": [
        p.encode_message(p.Open(1, "203.0.113.9", 1)),
        p.encode_message(p.Data(1, b"x" * (p.DEFAULT_WINDOW + 1))),
    ],
    "credit-overflow": [
        p.encode_message(p.Open(1, "203.0.113.9", 1)),
        p.encode_message(*[p.Credit(1, p.MAX_WINDOW)] * 2),
    ],
    "stream-id-reused": [
        p.encode_message(p.Open(5, "203.0.113.9", 1)),
        p.encode_message(p.Open(3, "203.0.113.9", 1)),
    ],
    "ping-flood": [p.encode_message(*[p.Ping(n) for n in range(200)])],
    "second-welcome-as-text": [p.encode_message(welcome()).decode("latin-1")],
}


@pytest.mark.parametrize("shape", list(PROTOCOL_BREAKS))
async def test_a_relay_that_breaks_the_protocol_is_dropped_with_a_reason(shape, loop_errors):
    """Each shape costs the agent a message's worth of work at most: the link is closed with
    a reason the user sees (the agent reconnects, as after any lost link), nothing escapes into
    its loop, and the local app got at most the connections the relay opened."""

    async def script(side: Agentside) -> None:
        if len(relay.sessions) == 1:
            await side.send(welcome())
            for message in PROTOCOL_BREAKS[shape]:
                await side.send_raw(message)  # type: ignore[arg-type]
        await side.until_closed()

    started = time.monotonic()
    async with (
        local_app() as (_, port),
        fake_relay(script) as relay,
        agent_to(relay.url, port) as run,
    ):
        lost = await run.event(Reconnecting)
        assert isinstance(lost, Reconnecting)
        assert "protocol error" in lost.reason or "text websocket message" in lost.reason
        shown(lost.reason)
        assert time.monotonic() - started < 5
        assert run.agent.state in ("reconnecting", "online") and not run.task.done()
    assert not loop_errors


async def test_a_message_over_the_limit_in_fragments_is_refused_not_gathered(loop_errors):
    """websockets counts a fragmented message's size as it comes: 20 MiB in 1 MiB fragments
    closes the link (1009) at 16 MiB, never joined in memory."""

    async def script(side: Agentside) -> None:
        if len(relay.sessions) == 1:
            await side.send(welcome())
            with contextlib.suppress(ConnectionClosed):
                await side.ws.send(iter([b"\x00" * (1 << 20)] * 20))
        await side.until_closed()

    async with (
        local_app() as (_, port),
        fake_relay(script) as relay,
        agent_to(relay.url, port) as run,
    ):
        lost = await run.event(Reconnecting)
        assert isinstance(lost, Reconnecting)
        assert run.agent.link is None or run.agent.link.ws.state.name != "OPEN"
    assert not loop_errors


async def test_a_relay_gone_silent_after_its_welcome_is_dropped_by_the_heartbeat():
    async def script(side: Agentside) -> None:
        await side.send(welcome(ping_interval=0.1))
        await asyncio.sleep(2)  # reads nothing, answers no ping

    async with (
        local_app() as (_, port),
        fake_relay(script) as relay,
        agent_to(relay.url, port) as run,
    ):
        lost = await run.event(Reconnecting, timeout=5)
        assert isinstance(lost, Reconnecting) and "heartbeat timeout" in lost.reason


async def test_requests_pipelined_faster_than_the_app_answers_cost_bounded_memory():
    """Before: 8 MiB of tiny pipelined requests, read by an app that answers none, left
    301,000 exchanges waiting in the observer (116 MB, 14 times the bytes, without end)."""
    request = b"GET / HTTP/1.1\r\nHost: pay.example.test\r\n\r\n"
    chunk = request * (16384 // len(request))
    total = 8 * 1024 * 1024

    async def script(side: Agentside) -> None:
        await side.send(welcome(), p.Open(1, "203.0.113.9", 4000))
        credit, sent = p.DEFAULT_WINDOW, 0
        while sent < total:
            while credit < len(chunk):
                credit += sum(f.amount for f in await side.frames() if isinstance(f, p.Credit))
            await side.send(p.Data(1, chunk))
            credit, sent = credit - len(chunk), sent + len(chunk)
        done.set()
        await side.until_closed()

    async def reads_never_answers(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass

    done = asyncio.Event()
    app = await asyncio.start_server(reads_never_answers, "127.0.0.1", 0)
    tracemalloc.start()
    try:
        async with (
            fake_relay(script) as relay,
            agent_to(relay.url, app.sockets[0].getsockname()[1]) as run,
        ):
            await run.event(TunnelOpen)
            before = tracemalloc.get_traced_memory()[0]
            async with asyncio.timeout(30):
                await done.wait()
            await asyncio.sleep(0.2)
            grown = tracemalloc.get_traced_memory()[0] - before
            conn = run.agent.link.streams[1]  # type: ignore[union-attr]
            assert grown < 10 * 1024 * 1024, f"{grown / 1e6:.0f} MB for 8 MiB of requests"
            assert len(conn.observer.pending) <= 64  # type: ignore[union-attr]  # MAX_PENDING
            assert run.agent.state == "online"
    finally:
        tracemalloc.stop()
        app.close()
