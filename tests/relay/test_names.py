"""Names on a relay with tokens: reserved globs, random names that avoid them, the resume lease
that holds a name for its agent, and takeover of one's own live tunnel."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch

from relay.agent import Refused
from relay.server import Relay
from relay.wire import codec as p
from tests.relay.helpers import get, make_token, raw_agent, refusal
from tests.support.apps import raw_server
from tests.support.stack import agent_for, lose_connection, relay_settings, running_relay
from tests.support.waiting import eventually

ALICE = make_token("alice", names=("alice-*", "demo"))
BOB = make_token("bob")
OLD = make_token("old", names=("legacy",), revoked=True)


async def test_a_reserved_name_is_only_for_its_token(app_port):
    async with running_relay(tokens=(ALICE.entry, BOB.entry, OLD.entry)) as relay:
        for name in ("alice-x", "demo"):
            refused = await refusal(relay, app_port, name, token=BOB.secret)
            assert refused.code == "name_reserved"
            assert f"'{name}' is reserved" in refused.message
        async with agent_for(relay, app_port, "alice-x", token=ALICE.secret) as tunnel:
            assert tunnel.agent.name == "alice-x"
            assert (await get(relay.http_port, tunnel.host)).status == 200
        # a glob matches whole names only, and a revoked token reserves nothing
        async with (
            agent_for(relay, app_port, "not-alice-x", token=BOB.secret),
            agent_for(relay, app_port, "legacy", token=BOB.secret),
        ):
            pass


async def test_random_names_never_land_on_reserved_globs(app_port):
    # Reserve every name that starts with a to r: most of the random names the relay makes.
    greedy = make_token("greedy", names=("[a-r]*",))
    async with (
        running_relay(tokens=(greedy.entry, BOB.entry)) as relay,
        contextlib.AsyncExitStack() as stack,
    ):
        names = []
        for _ in range(12):
            tunnel = await stack.enter_async_context(agent_for(relay, app_port, token=BOB.secret))
            names.append(tunnel.agent.name)
        assert len(set(names)) == 12
        assert not [n for n in names if fnmatch.fnmatchcase(n, "[a-r]*")], names
        refused = await refusal(relay, app_port, "brave-otter", token=BOB.secret)
        assert refused.code == "name_reserved"


async def test_a_held_name_goes_back_to_its_own_agent_only(app_port):
    async with running_relay(lease=30.0) as relay:
        async with raw_agent(relay, "held") as (_ws, welcome):
            assert isinstance(welcome, p.Welcome)
            resume = welcome.resume
        await asyncio.sleep(0.1)
        assert "held" in relay.leases
        refused = await refusal(relay, app_port, "held")
        assert refused.code == "name_held"
        assert "held for its previous agent" in refused.message
        assert (await get(relay.http_port, f"held.localhost:{relay.http_port}")).status == 503
        async with raw_agent(relay, "held", resume=resume) as (_, again):
            assert isinstance(again, p.Welcome) and again.name == "held"
            assert "held" not in relay.leases


async def test_takeover_replaces_only_a_tunnel_of_the_same_token():
    async with (
        raw_server() as first_app,
        raw_server() as second_app,
        running_relay(tokens=(ALICE.entry, BOB.entry)) as relay,
    ):
        second_app.response = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"
        async with agent_for(relay, first_app.port, "site", token=ALICE.secret) as first:
            host = first.host
            assert (await get(relay.http_port, host)).body == b"ok"
            plain = await refusal(relay, second_app.port, "site", token=ALICE.secret)
            assert plain.code == "name_taken" and "--takeover" in plain.message
            other = await refusal(relay, second_app.port, "site", token=BOB.secret, takeover=True)
            assert other.code == "name_taken"
            async with agent_for(
                relay, second_app.port, "site", token=ALICE.secret, takeover=True
            ) as second:
                assert second.agent.name == "site"
                assert (await get(relay.http_port, host)).body == b"second"
                # The replaced agent is not left fighting for the name: it stops, refused.
                done, _ = await asyncio.wait({first.task}, timeout=5)
                assert done, "the replaced agent is still running"
                assert isinstance(first.task.exception(), Refused)
                assert first.task.exception().code == "replaced"
                assert (await get(relay.http_port, host)).body == b"second"


async def test_takeover_of_a_held_name_by_the_same_token(app_port):
    async with running_relay(tokens=(ALICE.entry, BOB.entry), lease=30.0) as relay:
        async with raw_agent(relay, "site", token=ALICE.secret) as (_ws, welcome):
            assert isinstance(welcome, p.Welcome)
        await asyncio.sleep(0.1)
        assert "site" in relay.leases
        assert (await refusal(relay, app_port, "site", token=ALICE.secret)).code == "name_held"
        theirs = await refusal(relay, app_port, "site", token=BOB.secret, takeover=True)
        assert theirs.code == "name_held"
        async with agent_for(relay, app_port, "site", token=ALICE.secret, takeover=True) as t:
            assert (await get(relay.http_port, t.host)).status == 200


async def test_an_agent_replaced_by_takeover_stops_even_with_takeover_itself():
    async with (
        raw_server() as first_app,
        raw_server() as second_app,
        running_relay(tokens=(ALICE.entry,)) as relay,
        agent_for(relay, first_app.port, "site", token=ALICE.secret, takeover=True) as first,
        agent_for(relay, second_app.port, "site", token=ALICE.secret, takeover=True) as second,
    ):
        second_app.response = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"
        done, _ = await asyncio.wait({first.task}, timeout=3)
        assert done, "the replaced agent keeps coming back"
        assert isinstance(first.task.exception(), Refused)
        assert second.agent.state == "online"
        assert (await get(relay.http_port, first.host)).body == b"second"


async def test_agents_get_their_names_back_from_a_restarted_relay(app_port):
    first = Relay(relay_settings(tokens=(ALICE.entry, BOB.entry)))
    await first.start()
    ports = {"http_port": first.http_port, "agents_port": first.agents_port}
    try:
        async with (
            agent_for(first, app_port, "alice-site", token=ALICE.secret) as named,
            agent_for(first, app_port, token=BOB.secret, backoff_max=0.5) as unnamed,
        ):
            random_name = unnamed.agent.name
            await first.stop()  # the upgrade: agents are told the relay is going away
            async with Relay(relay_settings(tokens=(ALICE.entry, BOB.entry), **ports)) as second:
                async with asyncio.timeout(5):
                    while len(second.tunnels) < 2:
                        await asyncio.sleep(0.05)
                assert set(second.tunnels) == {"alice-site", random_name}
                assert named.agent.url == f"http://alice-site.localhost:{ports['http_port']}"
                kinds = [type(e).__name__ for e in named.events]
                assert kinds[-2:] == ["Reconnecting", "Reconnected"]
                assert "going away" in named.events[-2].reason
                assert (await get(second.http_port, named.host)).status == 200
                other = await refusal(second, app_port, random_name, token=BOB.secret)
                assert other.code == "name_taken"
    finally:
        await first.stop()


async def test_a_deliberate_stop_frees_the_name_at_once(app_port):
    async with running_relay(lease=30.0) as relay:
        async with agent_for(relay, app_port, "web") as first:
            host = first.host
            assert (await get(relay.http_port, host)).status == 200
        # agent.stop() said GOAWAY: no lease, no "held" 503, the name is anyone's.
        assert "web" not in relay.leases and "web" not in relay.tunnels
        page = await get(relay.http_port, host)
        assert page.status == 404 and b"held" not in page.body
        async with agent_for(relay, app_port, "web", resume="") as second:
            assert second.agent.name == "web"
            assert (await get(relay.http_port, host)).status == 200


async def test_a_lost_connection_still_holds_the_name_for_its_agent(app_port):
    async with running_relay(lease=30.0) as relay:
        async with agent_for(relay, app_port, "web") as first:
            resume = first.agent.resume
            await lose_connection(first)
        await eventually(lambda: "web" in relay.leases, what="the lease")
        page = await get(relay.http_port, f"web.localhost:{relay.http_port}")
        assert page.status == 503
        assert (await refusal(relay, app_port, "web")).code == "name_held"
        async with agent_for(relay, app_port, "web", resume=resume) as back:
            assert back.agent.name == "web"
