"""Liveness: heartbeats measure RTT and find silent peers, agents reconnect and keep their name
(after a dropped link and after a relay restart), and held names stay held."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest

from relay.agent import Agent, AgentSettings, Refused
from relay.events import Reconnected, Reconnecting, RequestRecord, TunnelOpen
from relay.server import Relay
from tests.support.stack import Tunnel, agent_for, lose_connection, relay_settings, running_relay
from tests.support.waiting import eventually


async def status_of(t: Tunnel, path: str = "/") -> int:
    async with httpx.AsyncClient(base_url=t.base, headers={"Host": t.host}, timeout=5) as c:
        return (await c.get(path)).status_code


def kinds(t: Tunnel) -> list[type]:
    return [type(e) for e in t.events if not isinstance(e, RequestRecord)]


async def test_rtt_is_measured(app_port):
    async with running_relay(ping_interval=0.1) as relay, agent_for(relay, app_port, "rtt") as t:
        await eventually(lambda: t.agent.rtt is not None, what="an agent RTT")
        assert isinstance(t.agent.rtt, float)
        assert 0 < t.agent.rtt < 0.5
        (session,) = relay.sessions
        await eventually(lambda: session.rtt is not None, what="a relay RTT")
        assert 0 < session.rtt < 0.5


async def test_relay_drops_a_silent_agent_and_holds_its_name(app_port):
    async with (
        running_relay(ping_interval=0.1, ping_timeout=0.4, lease=30.0) as relay,
        agent_for(
            relay, app_port, "quiet", ping_interval=30.0, ping_timeout=60.0, backoff_first=0.05
        ) as t,
    ):
        link = t.agent.link
        assert link is not None and link.transport is not None
        link.transport.pause_reading()  # the agent hears no pings and answers none
        took = await eventually(lambda: "quiet" not in relay.tunnels, what="the relay to notice")
        assert 0.25 < took < 1.0
        assert "quiet" in relay.leases
        assert await status_of(t) == 503
        # Once the agent hears again, it finds its link dead and comes back under its name.
        link.transport.resume_reading()
        await eventually(lambda: "quiet" in relay.tunnels, what="the agent to come back")
        assert t.agent.name == "quiet"
        assert await status_of(t) == 200
        assert Reconnected in kinds(t)


async def test_agent_drops_a_silent_relay_and_reconnects(app_port):
    async with (
        running_relay(ping_interval=30.0, ping_timeout=60.0) as relay,
        agent_for(
            relay, app_port, "deaf", ping_interval=0.1, ping_timeout=0.4, backoff_first=0.05
        ) as t,
    ):
        (session,) = relay.sessions
        session.transport.pause_reading()  # the relay hears no pings and answers none
        try:
            took = await eventually(lambda: Reconnecting in kinds(t), what="the agent to notice")
            assert took < 1.0
            reconnecting = next(e for e in t.events if isinstance(e, Reconnecting))
            assert "heartbeat" in reconnecting.reason
            await eventually(lambda: Reconnected in kinds(t), what="the agent to reconnect")
            assert t.agent.name == "deaf"
            assert relay.tunnels["deaf"] is not session
            assert await status_of(t) == 200
        finally:
            session.transport.abort()  # so the relay's shutdown does not wait for it


async def test_a_reconnecting_agent_replaces_its_dead_session_at_the_first_attempt(app_port):
    async with (
        running_relay(ping_interval=30.0, ping_timeout=60.0) as relay,
        agent_for(
            relay, app_port, "replace", ping_interval=0.1, ping_timeout=0.4, backoff_first=0.05
        ) as t,
    ):
        (old,) = relay.sessions
        old.transport.pause_reading()  # the relay will not notice the agent leave
        try:
            await eventually(lambda: Reconnected in kinds(t), what="the agent to reconnect")
            assert kinds(t) == [TunnelOpen, Reconnecting, Reconnected]
            await eventually(lambda: old.closed.done(), timeout=1.0, what="the old session closed")
            assert relay.sessions == {relay.tunnels["replace"]}
        finally:
            old.transport.abort()


async def test_agent_reconnects_after_its_link_is_cut(app_port):
    async with running_relay() as relay, agent_for(relay, app_port, "phoenix") as t:
        assert await status_of(t) == 200
        old_link = t.agent.link
        old_link.transport.abort()
        await eventually(lambda: Reconnected in kinds(t), what="a reconnection")
        assert t.agent.link is not old_link
        assert t.agent.name == "phoenix"
        assert relay.tunnels["phoenix"].name == "phoenix"
        assert await status_of(t) == 200
        assert kinds(t)[:3] == [TunnelOpen, Reconnecting, Reconnected]
        reconnected = next(e for e in t.events if isinstance(e, Reconnected))
        assert reconnected.url == t.agent.url


async def test_agent_survives_a_relay_restart(app_port):
    first = Relay(relay_settings())
    await first.start()
    http_port, agents_port = first.http_port, first.agents_port
    second: Relay | None = None
    try:
        async with agent_for(first, app_port, "restart") as t:
            assert await status_of(t) == 200
            await first.stop()
            second = Relay(relay_settings(http_port=http_port, agents_port=agents_port))
            await second.start()
            took = await eventually(
                lambda: "restart" in second.tunnels and t.agent.state == "online",
                timeout=5.0,
                what="the agent to find the new relay",
            )
            assert took < 5.0
            assert t.agent.name == "restart"
            assert await status_of(t) == 200
            assert Reconnected in kinds(t)
            reasons = [e.reason for e in t.events if isinstance(e, Reconnecting)]
            assert "relay going away" in reasons[0]
    finally:
        if second is not None:
            await second.stop()


async def test_held_name_is_refused_to_another_agent_and_given_back_to_its_owner(app_port):
    async with running_relay(lease=30.0) as relay:
        async with agent_for(relay, app_port, "mine") as t:
            resume = t.agent.resume
            await lose_connection(t)
        await eventually(lambda: "mine" in relay.leases, what="the lease")

        stranger = Agent(AgentSettings(local_port=app_port, relay=relay.agents_url, name="mine"))
        with pytest.raises(Refused) as info:
            async with asyncio.timeout(5):
                await stranger.run()
        assert info.value.code == "name_held"
        assert "mine" in info.value.message and "held" in info.value.message

        owner = Agent(AgentSettings(local_port=app_port, relay=relay.agents_url, name="mine"))
        owner.resume = resume  # what a reconnecting agent presents
        task = asyncio.create_task(owner.run())
        try:
            await eventually(lambda: owner.state == "online", what="the owner to get it back")
            assert owner.name == "mine"
            assert "mine" not in relay.leases
        finally:
            owner.stop()
            await asyncio.wait_for(task, 5)


async def test_lease_expires_and_frees_the_name(app_port):
    async with running_relay(lease=0.2) as relay:
        async with agent_for(relay, app_port, "brief") as lost:
            await lose_connection(lost)
        await eventually(lambda: "brief" in relay.leases, what="the lease")
        await eventually(lambda: "brief" not in relay.leases, timeout=2, what="expiry")
        async with agent_for(relay, app_port, "brief") as t:
            assert t.agent.name == "brief"


async def test_a_stall_of_the_agents_own_process_is_not_taken_for_a_silent_relay(
    app_port, tmp_path
):
    """`molehill http` (uvloop) frozen with SIGSTOP for twice its ping timeout while the relay
    keeps pinging it (the relay's own timeout is long). When it runs again, uvloop runs due
    timers before it reads the sockets: the heartbeat must read the pings waiting there before
    it judges the relay silent. On a busy machine a stall like this took healthy links down."""
    from tests.reliability.procs import agent_process, relay_process

    async with (
        relay_process(tmp_path, ping_interval=0.2, ping_timeout=30.0) as relay,
        agent_process(tmp_path, relay.agents_url, app_port, "stall") as agent,
    ):
        await asyncio.sleep(0.5)  # the first pings have been answered
        agent.kill(signal.SIGSTOP)
        try:
            await asyncio.sleep(1.5)  # the agent's timeout is 3 pings: 0.6 s
        finally:
            agent.kill(signal.SIGCONT)
        await asyncio.sleep(1.0)
        changes = [e for e in agent.events if e.get("event") != "tunnel_open"]
        assert not changes, changes
