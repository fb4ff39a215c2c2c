"""What an agent's user sees when the relay URL is wrong: each message names the problem."""

from __future__ import annotations

from tests.relay.helpers import first_retry_reason
from tests.support.cli import molehill_process
from tests.support.stack import running_relay


async def test_agent_pointed_at_the_public_port():
    async with running_relay() as relay:
        reason = await first_retry_reason(f"ws://127.0.0.1:{relay.http_port}")
    assert "relay answered HTTP 404" in reason, reason
    assert f"Agents connect to this relay at port {relay.agents_port}" in reason, reason


async def test_agent_pointed_at_nothing():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reason = await first_retry_reason(f"ws://127.0.0.1:{port}")
    assert f"nothing listens at ws://127.0.0.1:{port} — is the relay running?" in reason


async def test_agent_speaking_tls_to_a_plain_relay_is_told_so():
    async with running_relay() as relay:
        reason = await first_retry_reason(f"wss://127.0.0.1:{relay.agents_port}")
    assert "TLS" in reason, reason


async def test_a_failed_handshake_leaves_no_asyncio_noise_on_stderr():
    async with running_relay() as relay:
        url = f"ws://127.0.0.1:{relay.http_port}"
        async with molehill_process("http", "9", "--relay", url) as agent:
            assert await agent.wait() == 1  # at once: no retry makes the public port an agents'
            stderr = await agent.rest_of_stderr()
    assert "molehill http PORT --relay ws://127.0.0.1:" in stderr, stderr
    assert "Future exception was never retrieved" not in stderr, stderr
