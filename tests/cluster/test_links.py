"""An agent holding one name through two nodes at once (issue 16, point 3), for real: node
processes, a real redis-server, visitors through every node, a node killed with kill -9 and
started again. Data is checked by hash."""

from __future__ import annotations

import asyncio
import signal
import time
from types import SimpleNamespace

import pytest

from relay.agent import AgentSettings, Unreachable
from relay.agent.links import LinkedAgent
from relay.cluster.status import read_status
from relay.events import LinkChanged, Reconnecting, TunnelOpen
from relay.wire import codec as p
from tests.cluster.node_procs import PING, forwarded, linked_agent, node_proc, served, visit
from tests.cluster.nodes import cluster_nodes, linked
from tests.cluster.redis_proc import free_port
from tests.relay.helpers import make_token, raw_agent
from tests.reliability.procs import agent_process
from tests.support.cli import run_molehill
from tests.support.stack import running_relay
from tests.support.waiting import eventually


async def test_both_links_carry_streams_and_only_that_agent_may_join(
    redis_server, tmp_path, app_port
):
    async with (
        node_proc(tmp_path, redis_server.url, "node1") as node1,
        node_proc(tmp_path, redis_server.url, "node2") as node2,
        node_proc(tmp_path, redis_server.url, "node3") as node3,
        linked_agent([node1.agents_url, node2.agents_url], app_port, "both") as (agent, events, _),
    ):
        await eventually(lambda: len(agent.up) == 2, what="both links up")
        first, second = agent.links
        assert agent.name == "both" and first.url == second.url == agent.url
        assert agent.url == "http://both.localhost:8080"  # the same public URL through both
        assert sum(isinstance(e, TunnelOpen) for e in events) == 1
        ups = [e for e in events if isinstance(e, LinkChanged) and e.up]
        assert {e.relay for e in ups} == {node1.agents_url, node2.agents_url}
        record = redis_server.client().hgetall("molehill:name:both")
        assert record["nodes"] == "node1 node2" and record["state"] == "live"
        status = await read_status(redis_server.url)
        listed = {n.id: [(t.name, t.state, t.also) for t in n.tunnels] for n in status.nodes}
        assert listed["node1"] == [("both", "live", ["node2"])] and listed["node2"] == []

        # a visitor of a node with a link is served there; of node3, through a node with one
        outcomes = [await visit(node.http_port, "both") for node in (node1, node2) for _ in "x" * 8]
        assert outcomes == ["ok"] * 16
        assert first.requests >= 8 and second.requests >= 8, (first.requests, second.requests)
        assert await forwarded(node1) == 0 and await forwarded(node2) == 0
        await served(node3.http_port, "both")  # node3 learns the name by pub/sub
        before = await forwarded(node3)
        assert [await visit(node3.http_port, "both") for _ in "x" * 4] == ["ok"] * 4
        assert await forwarded(node3) == before + 4

        # another agent cannot join the name: no resume token, a forged one, or none at all
        for node in (node1, node2, node3):
            for resume in ("", "forged-token"):
                remote = SimpleNamespace(agents_url=node.agents_url)
                options = {"links": True}
                async with raw_agent(remote, "both", resume=resume, options=options) as (_, got):  # type: ignore[arg-type]
                    assert isinstance(got, p.Error) and got.code == "name_taken", got
        assert redis_server.client().hget("molehill:name:both", "nodes") == "node1 node2"

        # `molehill http --relay A --relay B`: one tunnel_open, a link event per relay, one URL
        extra = ("--relay", node3.agents_url)
        async with agent_process(tmp_path, node2.agents_url, app_port, "cli", extra=extra) as cli:
            assert cli.url == "http://cli.localhost:8080"
            links = await cli.wait_for(
                lambda: [e for e in cli.events if e.get("event") == "link"][1:] and cli.events,
                what="two link events",
            )
            ups = {e["relay"] for e in links if e.get("event") == "link" and e["up"]}
            assert ups == {node2.agents_url, node3.agents_url}
            assert sum(e.get("event") == "tunnel_open" for e in cli.events) == 1
            assert await visit(node1.http_port, "cli") == "ok"
            cli.kill(signal.SIGINT)  # stops on purpose: a GOAWAY on each link
            assert await cli.wait() == 0
        await eventually(
            lambda: not redis_server.client().exists("molehill:name:cli"),
            what="the name freed when the agent stopped (a GOAWAY on each link)",
        )


async def test_kill_9_of_one_node_visitors_keep_being_served_through_the_other(
    redis_server, tmp_path, app_port
):
    """Traffic through node2 (a link there) and node3 (forwarded, to node1 first) while
    node1 is killed: no request hangs, node2's never fail, node3's succeed again within the
    heartbeat timeout; the name never changes; node1 started again gets its link back."""
    async with (
        node_proc(tmp_path, redis_server.url, "node1") as node1,
        node_proc(tmp_path, redis_server.url, "node2") as node2,
        node_proc(tmp_path, redis_server.url, "node3") as node3,
        linked_agent([node1.agents_url, node2.agents_url], app_port, "steady") as (
            agent,
            events,
            _,
        ),
    ):
        await eventually(lambda: len(agent.up) == 2, what="both links up")
        client = redis_server.client()
        assert client.hget("molehill:name:steady", "nodes") == "node1 node2"
        await served(node3.http_port, "steady")
        port1 = node1.agents_port

        log: dict[int, list[tuple[float, float, str]]] = {node2.http_port: [], node3.http_port: []}
        stop = asyncio.Event()

        async def traffic(port: int) -> None:
            while not stop.is_set():
                started = time.monotonic()
                log[port].append((started, time.monotonic(), await visit(port, "steady")))

        loops = [asyncio.create_task(traffic(port)) for port in log for _ in range(2)]
        await asyncio.sleep(1.0)
        node1.kill()
        killed = time.monotonic()
        assert await node1.wait() == -9
        await asyncio.sleep(PING[1] + 1.0)
        stop.set()
        await asyncio.gather(*loops)

        outcomes = [o for entries in log.values() for _, _, o in entries]
        assert "hang" not in outcomes and "corrupt" not in outcomes
        assert all(o == "ok" for _, _, o in log[node2.http_port]), log[node2.http_port]
        after = [(end, o) for start, end, o in log[node3.http_port] if start > killed]
        ok_ends = [end for end, o in after if o == "ok"]
        assert ok_ends, after
        failover = ok_ends[0] - killed
        assert failover < PING[1], f"first request served {failover:.2f} s after the kill"
        print(f"failover through node3: {failover:.3f} s; outcomes {_count(outcomes)}")
        assert agent.name == "steady" and agent.state == "online"
        down = [e for e in events if isinstance(e, LinkChanged) and not e.up]
        assert [(e.relay, e.links_up) for e in down] == [(node1.agents_url, 1)], down
        assert not any(isinstance(e, Reconnecting) for e in events)  # the tunnel never was down
        await eventually(
            lambda: client.hget("molehill:name:steady", "nodes") == "node2",
            timeout=10,
            what="node2 to drop the dead node1 from the name's holders",
        )

        # node1 answers again: the agent opens its link there again, same name
        async with node_proc(tmp_path, redis_server.url, "node1", port=port1) as again:
            await eventually(lambda: len(agent.up) == 2, timeout=10, what="the link back")
            assert set(client.hget("molehill:name:steady", "nodes").split()) == {"node1", "node2"}
            assert await visit(again.http_port, "steady") == "ok"
            assert agent.name == "steady"


def _count(outcomes: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


async def test_a_relay_that_is_no_cluster_node_carries_one_link_and_says_why(app_port):
    """Two --relay URLs that reach one relay: one link serves, the other is refused
    ``link_here`` (and keeps trying, quietly); hostile ``links`` options are refused."""
    async with running_relay() as relay:
        urls = [relay.agents_url, relay.agents_url]
        async with linked_agent(urls, app_port, "single") as (agent, _events, task):
            await asyncio.sleep(1.0)  # the second link has been refused a few times by now
            assert len(agent.up) == 1 and agent.state == "online" and not task.done()
            assert await visit(relay.http_port, "single") == "ok"
            async with raw_agent(relay, "single", resume=agent.resume, options={"links": True}) as (
                _,
                got,
            ):
                assert isinstance(got, p.Error) and got.code == "link_here"
                assert "not a cluster node" in got.message
        for options in ({"links": "yes"}, {"links": 1}, {"links": True, "protocol": "tcp"}):
            async with raw_agent(relay, "bad", options=options) as (_, got):
                assert isinstance(got, p.Error) and got.code == "bad_options", options
                assert "links" in got.message


async def test_links_started_with_a_stale_resume_token_come_up_under_one_fresh_one(
    redis_server, app_port
):
    """A resume token kept from an earlier run whose name has expired: the first link gets a
    fresh token for the free name and the other joins with it (links found one at a time),
    instead of one refused name_taken by the other's fresh claim."""
    async with cluster_nodes(redis_server.url, 2) as (one, two):
        await linked([one, two])
        urls = [one.agents_url, two.agents_url]
        async with linked_agent(urls, app_port, "again", resume="from-an-earlier-run") as (
            agent,
            _,
            task,
        ):
            await eventually(lambda: len(agent.up) == 2, timeout=10, what="both links")
            assert agent.resume != "from-an-earlier-run" and not task.done()
            assert one.tunnels["again"].resume == two.tunnels["again"].resume == agent.resume


async def test_an_agent_with_another_token_cannot_join_even_with_the_resume_token(
    redis_server, app_port
):
    """The name is the agent's: its token's label and its resume token, both checked by the
    claim script. Another token presenting the very resume token is refused on every node."""
    alice, bob = make_token("alice"), make_token("bob")
    tokens = (alice.entry, bob.entry)
    async with cluster_nodes(redis_server.url, 3, tokens=tokens) as (one, two, three):
        await linked([one, two, three])
        urls = [one.agents_url, two.agents_url]
        async with linked_agent(urls, app_port, "alices", token=alice.secret) as (agent, _, _):
            await eventually(lambda: len(agent.up) == 2, timeout=10, what="both links")
            for node in (one, two, three):
                options = {"links": True}
                async with raw_agent(
                    node, "alices", token=bob.secret, resume=agent.resume, options=options
                ) as (_, got):
                    assert isinstance(got, p.Error) and got.code == "name_taken", got
            holders = redis_server.client().hget("molehill:name:alices", "nodes")
            assert holders == "node1 node2"


async def test_bad_relay_urls_are_refused_before_connecting():
    finished = await run_molehill(
        "http", "3000", "--relay", "ws://127.0.0.1:9", "--relay", "http://127.0.0.1:9"
    )
    assert finished.code == 2
    assert "--relay must start with ws:// or wss://, got 'http://127.0.0.1:9'" in finished.err


async def test_links_that_never_connect_give_up_together_after_the_connect_timeout(app_port):
    """--connect-timeout holds for the tunnel: it gives up (Unreachable) once every link has
    failed that long, not while one of them may still come up."""
    urls = [f"ws://127.0.0.1:{free_port()}", f"ws://127.0.0.1:{free_port()}"]
    settings = AgentSettings(
        app_port, relay=urls[0], more_relays=(urls[1],), give_up_after=1.0, backoff_max=0.3
    )
    agent = LinkedAgent(settings)
    started = time.monotonic()
    with pytest.raises(Unreachable):
        await asyncio.wait_for(agent.run(), 10)
    assert 0.5 <= time.monotonic() - started < 5.0  # (a link gives up before a retry past it)
