"""What an agent's user sees when the relay URL is wrong: each message names the problem."""

from __future__ import annotations

import asyncio

from relay.agent import Agent, AgentSettings
from relay.events import Reconnecting
from tests.support.cli import molehill_process
from tests.support.stack import running_relay


async def first_retry_reason(url: str, port: int = 9) -> str:
    """Start an agent at ``url``; return the reason of its first retry."""
    events: list = []
    agent = Agent(AgentSettings(port, relay=url, connect_timeout=2.0), events.append)
    task = asyncio.create_task(agent.run())
    try:
        async with asyncio.timeout(5):
            while not any(isinstance(e, Reconnecting) for e in events):
                await asyncio.sleep(0.02)
    finally:
        agent.stop()
        await asyncio.wait({task}, timeout=3)
    return next(e for e in events if isinstance(e, Reconnecting)).reason


async def test_agent_pointed_at_the_public_port():
    async with running_relay() as relay:
        reason = await first_retry_reason(f"ws://127.0.0.1:{relay.http_port}")
    assert "relay answered HTTP 404" in reason and "No tunnel in this address" in reason


async def test_agent_pointed_at_nothing():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reason = await first_retry_reason(f"ws://127.0.0.1:{port}")
    assert "refused the connection; is `molehill relay` running?" in reason


async def test_agent_speaking_tls_to_a_plain_relay_is_told_so():
    async with running_relay() as relay:
        reason = await first_retry_reason(f"wss://127.0.0.1:{relay.agents_port}")
    assert "TLS" in reason, reason


async def test_a_failed_handshake_leaves_no_asyncio_noise_on_stderr():
    async with running_relay() as relay:
        url = f"ws://127.0.0.1:{relay.http_port}"
        async with molehill_process("http", "9", "--relay", url) as agent:
            await agent.line_matching(r"retrying in", timeout=5)
            await agent.line_matching(r"retrying in", timeout=5)
            assert await agent.terminate() == 0
            stderr = await agent.rest_of_stderr()
    assert "Future exception was never retrieved" not in stderr, stderr
