"""Resume tokens: minted by the relay (128 random bits, never the agent's choice), honoured only
for the agent token that earned them, and one the relay never issued is no resume at all."""

from __future__ import annotations

import asyncio
import re

from relay.server import Relay
from relay.wire import codec as p
from tests.relay.helpers import get, make_token, raw_agent, refusal
from tests.support.stack import agent_for, lose_connection, running_relay
from tests.support.waiting import eventually

ALICE = make_token("alice")
BOB = make_token("bob")
TOKENS = (ALICE.entry, BOB.entry)
URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")


def assert_minted(resume: str, *not_these: str) -> None:
    """A token the relay made: URL-safe base64 of at least 16 random bytes (22 characters)."""
    assert URL_SAFE.fullmatch(resume), resume
    assert len(resume) >= 22, resume
    assert resume not in not_these


async def held_for(relay: Relay, app_port: int, name: str, token: str = "") -> str:
    """A real agent brings ``name`` up and loses its connection; return its resume token."""
    async with agent_for(relay, app_port, name, token=token) as tunnel:
        resume = tunnel.agent.resume
        await lose_connection(tunnel)
    await eventually(lambda: name in relay.leases, what=f"the lease on '{name}'")
    return resume


async def test_the_welcome_carries_a_token_the_relay_minted_not_the_agents_own():
    chosen = "my-very-own-resume-token-of-my-choosing"
    async with (
        running_relay(tokens=TOKENS) as relay,
        raw_agent(relay, "chosen", token=ALICE.secret, resume=chosen) as (_, first),
        raw_agent(relay, "plain", token=ALICE.secret) as (_, second),
        raw_agent(relay, "other", token=BOB.secret, resume="x") as (_, third),
    ):
        assert isinstance(first, p.Welcome) and first.name == "chosen"
        assert isinstance(second, p.Welcome) and isinstance(third, p.Welcome)
        assert_minted(first.resume, chosen)
        assert_minted(second.resume, first.resume)
        assert_minted(third.resume, "x", first.resume, second.resume)


async def test_a_held_name_is_not_given_to_another_token_holding_its_resume_token(app_port):
    async with running_relay(tokens=TOKENS, lease=30.0) as relay:
        resume = await held_for(relay, app_port, "site", ALICE.secret)
        for extra in ({}, {"takeover": True}):
            theirs = await refusal(
                relay, app_port, "site", token=BOB.secret, resume=resume, **extra
            )
            assert theirs.code == "name_held"
            assert "held for its previous agent" in theirs.message
        assert "site" in relay.leases and "site" not in relay.tunnels
        async with agent_for(relay, app_port, "site", token=ALICE.secret, resume=resume) as back:
            assert back.agent.name == "site"
            assert (await get(relay.http_port, back.host)).status == 200
            assert "site" not in relay.leases


async def test_a_live_tunnel_is_not_given_to_another_token_holding_its_resume_token(app_port):
    # A raw agent whose connection stays open: the relay has not declared it dead.
    async with (
        running_relay(tokens=TOKENS) as relay,
        raw_agent(relay, "site", token=ALICE.secret) as (old, welcome),
    ):
        assert isinstance(welcome, p.Welcome)
        live = relay.tunnels["site"]
        theirs = await refusal(relay, app_port, "site", token=BOB.secret, resume=welcome.resume)
        assert theirs.code == "name_taken"
        assert "in use by another agent" in theirs.message
        assert relay.tunnels["site"] is live
        # The same token's agent, back before its old connection was declared dead.
        async with agent_for(
            relay, app_port, "site", token=ALICE.secret, resume=welcome.resume
        ) as back:
            assert back.agent.name == "site"
            assert relay.tunnels["site"] is not live
            assert (await get(relay.http_port, back.host)).status == 200
            async with asyncio.timeout(5):
                await old.wait_closed()


async def test_a_resume_token_the_relay_never_issued_is_no_resume(app_port):
    made_up = "made-up-by-the-agent-0123456789"
    async with running_relay(tokens=TOKENS, lease=30.0) as relay:
        # A free name is given, as without a token, but with one the relay minted.
        async with raw_agent(relay, "free", token=ALICE.secret, resume=made_up) as (_, welcome):
            assert isinstance(welcome, p.Welcome) and welcome.name == "free"
            assert_minted(welcome.resume, made_up)
        await eventually(lambda: "free" in relay.leases, what="the lease")
        # The made-up token gets nothing back, even for the token that presented it.
        mine = await refusal(relay, app_port, "free", token=ALICE.secret, resume=made_up)
        assert mine.code == "name_held"
        async with raw_agent(relay, "free", token=ALICE.secret, resume=welcome.resume) as (_, a):
            assert isinstance(a, p.Welcome) and a.name == "free"


async def test_on_a_relay_without_tokens_the_resume_token_still_works(app_port):
    async with running_relay(lease=30.0) as relay:
        resume = await held_for(relay, app_port, "open")
        assert_minted(resume)
        # Not ASCII: compared as bytes, refused like any other wrong token (not a crash).
        # The altered token changes its first character whatever it was (a fixed "x" equals
        # the real token one time in 64: that flaked).
        altered = ("y" if resume[0] == "x" else "x") + resume[1:]
        for wrong in ("", altered, "ünïcødé-résumé"):
            async with raw_agent(relay, "open", resume=wrong) as (_, answer):
                assert isinstance(answer, p.Error) and answer.code == "name_held"
        async with agent_for(relay, app_port, "open", resume=resume) as back:
            assert back.agent.name == "open"


async def test_an_honoured_resume_token_is_not_rotated(app_port):
    """The agent learns a new token only from a WELCOME. One that gives up on its handshake as
    the WELCOME is sent (its connect timeout, a cut connection) retries with the token it had:
    that token must still be the one the name is held for."""
    async with running_relay(tokens=TOKENS, lease=30.0) as relay:
        resume = await held_for(relay, app_port, "site", ALICE.secret)
        async with raw_agent(relay, "site", token=ALICE.secret, resume=resume) as (_, welcome):
            assert isinstance(welcome, p.Welcome) and welcome.resume == resume
        # ...and the WELCOME never reached the agent: the connection is gone.
        await eventually(lambda: "site" in relay.leases, what="the lease")
        async with agent_for(relay, app_port, "site", token=ALICE.secret, resume=resume) as back:
            assert back.agent.name == "site" and back.agent.resume == resume
