"""Agent tokens: refusals that say which problem it is, the token commands, revocation of a live
agent, per-token tunnel limits, and the relay that will not start open to the world."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import stat
import time
import tomllib

import pytest

from relay.agent import Agent, AgentSettings, Refused
from relay.server import Relay, RelayConfigError
from relay.server.access import token_hash
from relay.server.config import load_config
from relay.wire import codec as p
from tests.relay.helpers import agent_at, get, make_token, raw_agent, refusal
from tests.support.cli import molehill_process, run_molehill
from tests.support.stack import agent_for, relay_settings, running_relay

ALICE = make_token("alice")
BOB = make_token("bob")
GONE = make_token("gone", revoked=True)
TOKENS = (ALICE.entry, BOB.entry, GONE.entry)


@pytest.mark.parametrize(
    ("token", "code", "says"),
    [
        ("", "token_missing", "needs an agent token"),
        ("mh_not-a-token-of-this-relay", "token_invalid", "not valid on this relay"),
        (GONE.secret, "token_revoked", "'gone' was revoked"),
    ],
    ids=["missing", "wrong", "revoked"],
)
async def test_agent_without_a_good_token_is_refused_and_told_why(app_port, token, code, says):
    async with running_relay(tokens=TOKENS) as relay:
        refused = await refusal(relay, app_port, "site", token=token)
        assert refused.code == code
        assert says in refused.message
        assert not relay.tunnels
        # a good token gets through on the same relay
        async with agent_for(relay, app_port, "site", token=ALICE.secret) as tunnel:
            assert (await get(relay.http_port, tunnel.host)).status == 200


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "needs an agent token"),
        (("--token", "mh_typo"), "not valid on this relay"),
        (("--token", GONE.secret), "'gone' was revoked"),
    ],
    ids=["missing", "wrong", "revoked"],
)
async def test_http_command_with_a_bad_token_exits_1_with_the_reason(app_port, args, says):
    async with running_relay(tokens=TOKENS) as relay:
        done = await run_molehill("http", str(app_port), "--relay", relay.agents_url, *args)
    assert done.code == 1
    assert says in done.err
    assert "Traceback" not in done.err
    assert not done.out.strip()


async def test_token_add_list_revoke(tmp_path):
    config = tmp_path / "relay.toml"
    added = await run_molehill(
        "relay", "token", "add", "alice", "--names", "alice-*", "demo", "--max-tunnels", "3",
        "--config", str(config),
    )  # fmt: skip
    assert added.code == 0, added.err
    secret = added.out.strip()
    assert re.fullmatch(r"mh_[A-Za-z0-9_-]{40,}", secret), added.out  # the token, alone
    assert "shown only now" in added.err
    text = config.read_text()
    assert secret not in text
    assert token_hash(secret) in text
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    ci = await run_molehill("relay", "token", "add", "ci", "--config", str(config))
    assert ci.code == 0 and ci.out.strip() != secret

    again = await run_molehill("relay", "token", "add", "alice", "--config", str(config))
    assert again.code == 1 and "exists" in again.err

    listed = await run_molehill("relay", "token", "list", "--config", str(config))
    assert listed.code == 0
    rows = {line.split()[0]: line for line in listed.out.splitlines()[1:]}
    assert set(rows) == {"alice", "ci"}
    assert "active" in rows["alice"] and "alice-*, demo" in rows["alice"] and " 3 " in rows["alice"]
    assert secret not in listed.out and "sha256" not in listed.out

    revoked = await run_molehill("relay", "token", "revoke", "alice", "--config", str(config))
    assert revoked.code == 0 and "revoked" in revoked.out
    data = tomllib.loads(config.read_text())
    assert [t.get("revoked", False) for t in data["tokens"]] == [True, False]
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    listed = await run_molehill("relay", "token", "list", "--config", str(config))
    assert re.search(r"^alice\s+revoked", listed.out, re.M)

    missing = await run_molehill("relay", "token", "revoke", "nobody", "--config", str(config))
    assert missing.code == 1 and "no token labelled 'nobody'" in missing.err


async def test_revoking_a_token_disconnects_its_live_agent_only(tmp_path, app_port):
    config = tmp_path / "relay.toml"
    alice = (await run_molehill("relay", "token", "add", "alice", "--config", str(config))).out
    bob = (await run_molehill("relay", "token", "add", "bob", "--config", str(config))).out
    args = ("--http", "127.0.0.1:0", "--agents", "127.0.0.1:0")
    async with molehill_process("relay", "--config", str(config), *args) as relay:
        http_port = int((await relay.line_matching(r"public HTTP\s+\S+:(\d+)")).group(1))
        agents = (await relay.line_matching(r"agents\s+(ws://\S+)")).group(1)
        assert "agent tokens 2" in await relay.line()
        events_a: list = []
        agent_a = Agent(
            AgentSettings(app_port, relay=agents, name="a", token=alice.strip()), events_a.append
        )
        run_a = asyncio.create_task(agent_a.run())
        await asyncio.wait_for(agent_a.wait_online(), 10)
        async with agent_at(agents, app_port, "b", token=bob.strip()) as agent_b:
            host_b = f"b.localhost:{http_port}"
            assert (await get(http_port, f"a.localhost:{http_port}")).status == 200
            await asyncio.sleep(1.2)  # let the relay take its first look at the file
            revoked = await run_molehill(
                "relay", "token", "revoke", "alice", "--config", str(config)
            )
            assert revoked.code == 0
            started = time.monotonic()
            with pytest.raises(Refused) as info:
                await asyncio.wait_for(run_a, 5)
            assert time.monotonic() - started < 2.5
            assert info.value.code == "token_revoked"
            assert agent_a.state == "error"  # it does not come back
            assert [type(e).__name__ for e in events_a].count("Reconnecting") == 0
            page = await get(http_port, f"a.localhost:{http_port}")
            assert page.status == 503  # offline; nobody may take it back with that token
            assert (await get(http_port, host_b)).status == 200
            assert agent_b.agent.state == "online"
        assert await relay.terminate() == 0


async def test_a_change_to_the_config_file_right_after_start_is_noticed(tmp_path, app_port):
    config = tmp_path / "relay.toml"
    await run_molehill("relay", "token", "add", "alice", "--config", str(config))
    settings = load_config(config, relay_settings())
    async with Relay(settings) as relay:
        added = await run_molehill("relay", "token", "add", "bob", "--config", str(config))
        await asyncio.sleep(2.5)  # the relay looks at the file once a second
        async with agent_for(relay, app_port, "bob", token=added.out.strip()) as tunnel:
            assert tunnel.agent.state == "online"


async def test_sighup_reloads_tokens_at_once(tmp_path, app_port):
    config = tmp_path / "relay.toml"
    alice = (await run_molehill("relay", "token", "add", "alice", "--config", str(config))).out
    args = ("--http", "127.0.0.1:0", "--agents", "127.0.0.1:0")
    async with molehill_process("relay", "--config", str(config), *args) as relay:
        agents = (await relay.line_matching(r"agents\s+(ws://\S+)")).group(1)
        agent = Agent(AgentSettings(app_port, relay=agents, token=alice.strip()))
        task = asyncio.create_task(agent.run())
        await asyncio.wait_for(agent.wait_online(), 10)
        text = config.read_text().replace("[[tokens]]", "[[tokens]]\nrevoked = true", 1)
        stamp = os.stat(config).st_mtime_ns
        config.write_text(text)
        os.utime(config, ns=(stamp, stamp))  # same mtime: only the signal can tell the relay
        started = time.monotonic()
        relay.signal(signal.SIGHUP)
        with pytest.raises(Refused) as info:
            await asyncio.wait_for(task, 5)
        assert info.value.code == "token_revoked"
        assert time.monotonic() - started < 1.0
        assert await relay.terminate() == 0


async def test_max_tunnels_per_token(app_port):
    limited = make_token("limited", max_tunnels=2)
    async with (
        running_relay(tokens=(limited.entry, BOB.entry)) as relay,
        agent_for(relay, app_port, "one", token=limited.secret),
        agent_for(relay, app_port, "two", token=limited.secret) as two,
    ):
        refused = await refusal(relay, app_port, "three", token=limited.secret)
        assert refused.code == "too_many_tunnels"
        assert "'limited' may have 2 tunnel(s)" in refused.message
        async with agent_for(relay, app_port, "other", token=BOB.secret):
            pass  # another token is not counted against it
        two.agent.stop()
        await asyncio.wait({two.task}, timeout=5)
        async with agent_for(relay, app_port, "three", token=limited.secret) as three:
            assert (await get(relay.http_port, three.host)).status == 200


async def test_an_agent_at_its_tunnel_limit_can_come_back_before_its_old_link_is_dead():
    limited = make_token("single", max_tunnels=1)
    async with (
        running_relay(tokens=(limited.entry,)) as relay,
        raw_agent(relay, "solo", token=limited.secret) as (_, first),
    ):
        assert isinstance(first, p.Welcome)
        # The old websocket is still open: the reconnect replaces it, it is not a second tunnel.
        async with raw_agent(relay, "solo", token=limited.secret, resume=first.resume) as (
            _,
            again,
        ):
            assert isinstance(again, p.Welcome), again
            async with raw_agent(relay, "other", token=limited.secret) as (_, third):
                assert isinstance(third, p.Error) and third.code == "too_many_tunnels"


async def test_relay_on_a_public_address_needs_tokens_or_open():
    with pytest.raises(RelayConfigError, match="no agent tokens"):
        async with Relay(relay_settings(agents_host="0.0.0.0")):
            pass
    async with Relay(relay_settings(agents_host="0.0.0.0", open=True)) as relay:
        assert relay.agents_port
    async with Relay(relay_settings(agents_host="0.0.0.0", tokens=TOKENS)) as relay:
        assert relay.agents_port


async def test_relay_command_refuses_to_start_open_on_a_public_address():
    args = ("relay", "--http", "127.0.0.1:0", "--agents", "0.0.0.0:0")
    done = await run_molehill(*args)
    assert done.code == 1
    assert "the relay will not start" in done.err and "token add" in done.err
    assert "Traceback" not in done.err
    async with molehill_process(*args, "--open") as relay:
        await relay.line_matching(r"agent tokens none \(open relay\)")
        assert await relay.terminate() == 0


async def test_a_broken_config_file_keeps_the_previous_tokens(tmp_path, app_port, caplog):
    caplog.set_level(logging.INFO, logger="molehill.relay")
    config = tmp_path / "relay.toml"
    secret = (await run_molehill("relay", "token", "add", "alice", "--config", str(config))).out
    async with (
        Relay(load_config(config, relay_settings())) as relay,
        agent_for(relay, app_port, "kept", token=secret.strip()) as tunnel,
    ):
        await asyncio.sleep(1.1)  # the relay's first look at the file
        config.write_text(config.read_text() + "\n[[tokens]\nhalf an edit")
        await asyncio.sleep(1.2)
        failed = [r.getMessage() for r in caplog.records if "reload_failed" in r.getMessage()]
        assert failed and "not valid TOML" in failed[0]
        assert [t.label for t in relay.settings.tokens] == ["alice"]
        assert tunnel.agent.state == "online"
        assert (await get(relay.http_port, tunnel.host)).status == 200
