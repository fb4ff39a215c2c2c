"""Faults, each with the outcome a user should see: the agent killed mid-transfer, the relay
killed and restarted, the local app restarted, a visitor who stops reading, and a link to the
relay that goes silent without closing.

Processes that a fault kills run as real processes (`molehill relay`, `molehill http`, the test
app); the rest run in the test's own loop, where their state can be inspected.
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import time

import pytest

from relay.events import Reconnected, Reconnecting, RequestRecord
from relay.server.public import PublicConnection
from tests.reliability.procs import agent_process, app_process, relay_process
from tests.reliability.tools import (
    download,
    drain_until_closed,
    eventually,
    freezable_proxy,
    get,
)
from tests.support.stack import (
    agent_for,
    agent_via,
    open_raw,
    raw_request,
    read_response,
    running_relay,
)

MB = 1_000_000


async def test_agent_killed_mid_transfer_visitors_get_a_clean_error_and_the_name_is_held(
    tmp_path, app_port
):
    """kill -9 of `molehill http` during a download: the download ends (closed or reset) within
    a second instead of hanging, new visitors get the 503 "offline" page, and the name is held
    for the lease: another agent (another user, without the resume token) is refused it, while
    the same user's restarted `molehill http` (its resume token kept on disk) gets it back at
    once."""
    async with running_relay(lease=30.0) as relay:
        host = f"victim.localhost:{relay.http_port}"
        async with agent_process(tmp_path, relay.agents_url, app_port, "victim") as agent:
            reader, writer = await open_raw(relay.http_port)
            writer.write(raw_request(host, "/download?size=5000000000"))
            head = await read_response(reader, head_only=True)
            assert head.status == 200
            got = 0
            while got < 10 * MB:
                got += len(await reader.read(1 << 20))

            agent.kill(signal.SIGKILL)
            killed = time.monotonic()
            async with asyncio.timeout(1.0):
                how = await drain_until_closed(reader)
            took = time.monotonic() - killed
            writer.close()
            assert took < 1.0
            assert how in ("eof", "reset")
            assert await agent.wait() == -signal.SIGKILL

        assert "victim" in relay.leases and "victim" not in relay.tunnels
        offline = await get(relay.http_port, host)
        assert offline.status == 503
        assert b"offline" in offline.body and b"victim" in offline.body
        await eventually(
            lambda: all(c.session is None for c in relay.public_connections),
            what="the relay to forget the killed agent's streams",
        )

        # Another agent asking for the name is refused while the lease lasts ...
        async with agent_process(
            tmp_path,
            relay.agents_url,
            app_port,
            "victim",
            wait=False,
            resume_file=tmp_path / "someone-else.json",
        ) as stranger:
            refused = await stranger.event("refused")
            assert refused["code"] == "name_held"
            assert "held" in refused["message"] and "seconds" in refused["message"]
            assert await stranger.wait() == 1

        # ... and the restarted agent of the same user gets it back at once.
        async with agent_process(tmp_path, relay.agents_url, app_port, "victim") as back:
            assert back.name == "victim"
            assert "victim" not in relay.leases
            resp = await get(relay.http_port, host)
            assert resp.status == 200 and resp.body == b"hello from the local app"


async def test_relay_killed_and_restarted_agents_come_back_with_their_names(tmp_path, app_port):
    """The relay process is killed (SIGKILL, no goaway) and started again on the same ports: both
    agents reconnect within 5 s of the new relay listening, under the same names, and traffic
    flows again without anyone touching the agents."""
    async with relay_process(tmp_path) as first:
        http_port, agents_port = first.http_port, first.agents_port
        async with (
            agent_process(tmp_path, first.agents_url, app_port, "alpha") as alpha,
            agent_process(tmp_path, first.agents_url, app_port, "beta") as beta,
        ):
            for name in ("alpha", "beta"):
                assert (await get(http_port, first.host(name))).status == 200
            marks = (len(alpha.events), len(beta.events))

            first.kill(signal.SIGKILL)
            killed = time.monotonic()
            await first.wait()
            for agent, mark in zip((alpha, beta), marks, strict=True):
                await agent.event("reconnecting", timeout=5, start=mark)

            async with relay_process(tmp_path, http_port, agents_port) as second:
                listening = time.monotonic()
                for agent, mark in zip((alpha, beta), marks, strict=True):
                    back = await agent.event("reconnected", timeout=10, start=mark)
                    assert back["name"] == agent.name
                    assert back["url"] == agent.url
                took = time.monotonic() - listening
                print(
                    f"\nrelay restart: back {took:.2f}s after the new relay listened, "
                    f"{time.monotonic() - killed:.2f}s after the kill"
                )
                assert took < 5.0
                for name in ("alpha", "beta"):
                    resp = await get(http_port, second.host(name), "/echo/again")
                    assert resp.status == 200, resp.body
                assert alpha.proc.returncode is None and beta.proc.returncode is None


async def test_local_app_restarted_502_while_down_then_works_without_an_agent_restart(tmp_path):
    """The local app crashes (SIGKILL) and is started again on the same port: a keep-alive
    visitor's connection ends instead of hanging, requests get the 502 page (naming the app's
    address) while it is down, and work again afterwards; the agent never reconnects."""
    async with (
        app_process(tmp_path) as (app, port),
        running_relay() as relay,
        agent_for(relay, port, "bouncy") as t,
    ):
        idle_r, idle_w = await open_raw(relay.http_port)  # a keep-alive visitor
        idle_w.write(raw_request(t.host, "/echo/first"))
        assert (await read_response(idle_r)).status == 200

        app.kill(signal.SIGKILL)
        await app.wait()
        # The keep-alive visitor's connection ends cleanly instead of hanging.
        async with asyncio.timeout(2):
            assert await drain_until_closed(idle_r) in ("eof", "reset")
        idle_w.close()
        for _ in range(3):
            down = await get(relay.http_port, t.host)
            assert down.status == 502
            assert f"127.0.0.1:{port}".encode() in down.body

        async with app_process(tmp_path, port) as (_, same_port):
            assert same_port == port
            up = await get(relay.http_port, t.host, "/echo/after")
            assert up.status == 200
            assert b'"/echo/after"' in up.body
        assert t.agent.state == "online"
        assert not any(isinstance(e, Reconnecting | Reconnected) for e in t.events)
        statuses = [e.status for e in t.events if isinstance(e, RequestRecord)]
        assert statuses.count(502) == 3


# A stream stuck behind the stalled one (the defect this guards) takes a round to a fraction
# of its speed, or forever. Alone the rounds match (ratios ~1.0); in CI, beside the other
# worker's tests, pairs measured 0.66-1.01 (median 0.8) with nothing wrong: a finer figure is
# a benchmark's to give, not a test's.
FAIR_SHARE = 0.6


@pytest.mark.slow
async def test_a_stalled_visitor_costs_other_streams_no_throughput_and_bounded_memory(tmp_path):
    """Rounds of four parallel 24 MB downloads through the tunnel, alternately alone (reference)
    and beside a visitor who requested a 10 GB download and reads nothing. The median of each
    stalled round's throughput over the reference round before it must reach FAIR_SHARE.
    Alternating, and comparing neighbours, keeps other load on the machine (CI runs two test
    workers on its two cores) from deciding the result: the best rounds did not (one lucky
    reference round of 428 MB/s against medians of ~310 either way failed it), nor did the two
    lists' medians apart; a batch that misses is followed by up to two more, pooled.

    Then eight visitors stall at once while 200 MB more pass beside them: neither the relay's
    nor the agent's memory may grow by more than a few windows per stalled stream."""
    streams, size, pairs = 4, 24 * MB, 6
    async with (
        app_process(tmp_path) as (_, app_port),
        relay_process(tmp_path) as relay,
        # Captures off: this measures the data path's memory per stalled stream. With captures
        # on, the agent also holds copies of bodies (up to body_cap each) and the writer's queue
        # (bounded by queue_bytes, tests/inspector), and that allocator churn swamps 16 MiB.
        agent_process(
            tmp_path, relay.agents_url, app_port, "busy", extra=("--no-capture",)
        ) as agent,
    ):
        host = relay.host("busy")

        async def round_throughput() -> float:
            started = time.monotonic()
            await asyncio.gather(*(download(relay.http_port, host, size) for _ in range(streams)))
            return streams * size / (time.monotonic() - started)

        async def stall() -> asyncio.StreamWriter:
            _, writer = await open_raw(relay.http_port)
            writer.write(raw_request(host, "/download?size=10000000000"))
            await asyncio.sleep(0.3)  # its window fills, then it stalls
            return writer

        await round_throughput()  # warm up
        reference: list[float] = []
        stalled: list[float] = []
        for _ in range(3):
            for _ in range(pairs):
                reference.append(await round_throughput())
                writer = await stall()
                try:
                    stalled.append(await round_throughput())
                finally:
                    writer.close()
            # Each stalled round against the reference round just before it: the two shared
            # whatever else the machine was doing (medians of the two lists apart did not:
            # 0.83 once in CI while the other worker's tests ran).
            ratios = [s / r for s, r in zip(stalled, reference, strict=True)]
            if statistics.median(ratios) >= FAIR_SHARE:
                break
        print(
            f"\nthroughput MB/s alone {[round(x / MB) for x in reference]}, "
            f"beside a stalled visitor {[round(x / MB) for x in stalled]}"
        )
        assert statistics.median(ratios) >= FAIR_SHARE, [round(x, 2) for x in ratios]

        before = {"relay": relay.rss_kib(), "agent": agent.rss_kib()}
        writers = [await stall() for _ in range(8)]
        try:
            for _ in range(2):
                await round_throughput()
            await asyncio.sleep(0.3)
            after = {"relay": relay.rss_kib(), "agent": agent.rss_kib()}
            for writer in writers:
                assert not writer.is_closing()
        finally:
            for writer in writers:
                writer.close()
        print(f"RSS KiB before the eight stalled visitors {before}, beside them {after}")
        for who in ("relay", "agent"):
            assert after[who] - before[who] < 16 * 1024, (who, before, after)


async def test_a_stalled_stream_is_closed_by_the_idle_timeout(app_port):
    """A visitor who stops reading a download is disconnected once the stream has made no
    progress in either direction for ``idle_timeout`` seconds; a slow stream that keeps moving
    (an SSE event every 0.4 s) is not."""
    idle = 1.0  # the relay checks once a second, so a stream goes after 1 to 2 s of silence
    async with running_relay(idle_timeout=idle) as relay, agent_for(relay, app_port, "idle") as t:
        sse_r, sse_w = await open_raw(relay.http_port)
        sse_w.write(raw_request(t.host, "/sse?n=8&interval=0.4"))
        _, stalled_w = await open_raw(relay.http_port)
        stalled_w.write(raw_request(t.host, "/download?size=10000000000"))

        def stalled() -> PublicConnection | None:
            return next((c for c in relay.public_connections if c.writing_paused), None)

        await eventually(stalled, what="the download to stall")
        conn = stalled()
        assert conn is not None
        stuck_at = time.monotonic()
        await eventually(lambda: conn.finished, timeout=idle + 2.5, what="the idle timeout")
        assert time.monotonic() - stuck_at >= idle * 0.9
        await eventually(lambda: conn.sid not in t.agent.link.streams, what="the agent's stream")
        # The SSE stream, slow but never idle for a whole second, got all its events.
        sse = await read_response(sse_r, timeout=10)
        assert sse.status == 200 and sse.body.count(b"data: event") == 8
        stalled_w.close()
        sse_w.close()


async def test_a_silent_link_is_found_by_the_heartbeat_and_the_agent_reconnects(app_port):
    """The websocket between agent and relay goes silent (a proxy in between drops every byte
    both ways, and closes nothing). The relay's heartbeat finds it within its ping_timeout and
    holds the name (visitors get 503); the agent's heartbeat finds it within its own, and it
    reconnects (through the same proxy, on a new connection) under the same name."""
    relay_timeout, agent_timeout, interval, slack = 0.8, 2.0, 0.1, 0.5
    async with (
        running_relay(ping_interval=interval, ping_timeout=relay_timeout, lease=30) as relay,
        freezable_proxy(relay.agents_port) as proxy,
        agent_via(
            relay,
            proxy.url,
            app_port,
            "frozen",
            ping_interval=interval,
            ping_timeout=agent_timeout,
            backoff_first=0.05,
        ) as t,
    ):
        assert (await get(relay.http_port, t.host)).status == 200
        (session,) = relay.sessions
        assert proxy.freeze() == 1
        frozen_at = time.monotonic()

        relay_took = await eventually(
            lambda: session.closed.done(), timeout=relay_timeout + slack, what="the relay"
        )
        assert "heartbeat" in session.closed.result()
        assert relay_took >= relay_timeout * 0.9
        assert "frozen" in relay.leases
        assert (await get(relay.http_port, t.host)).status == 503

        await eventually(
            lambda: any(isinstance(e, Reconnecting) for e in t.events),
            timeout=agent_timeout + slack,
            what="the agent to notice",
        )
        agent_took = time.monotonic() - frozen_at
        assert agent_took >= agent_timeout * 0.9
        reconnecting = next(e for e in t.events if isinstance(e, Reconnecting))
        assert "heartbeat" in reconnecting.reason

        await eventually(
            lambda: any(isinstance(e, Reconnected) for e in t.events), what="a reconnection"
        )
        assert t.agent.name == "frozen"
        assert relay.tunnels["frozen"] is not session
        assert (await get(relay.http_port, t.host)).status == 200
        print(f"\nsilent link: relay noticed in {relay_took:.2f}s, agent in {agent_took:.2f}s")
