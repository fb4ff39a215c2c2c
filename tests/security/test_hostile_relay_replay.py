"""A hostile relay picks where a replay goes: it delivers a request "for" a host on the
developer's network (here a catcher on loopback) and waits for the developer to replay it
through the relay. The replay must go to the tunnel's public URL, the one the relay's WELCOME
named, or nowhere. A real `molehill http` (agent, capture store, local API) behind a fake relay
speaking the real protocol."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from relay.wire import codec as p
from tests.security.test_replay_destination import Catcher
from tests.support.cli import molehill_process
from tests.support.fake_relay import Agentside, fake_relay, welcome

PUBLIC = "http://pay.example.test"


async def stored_id(api: str) -> str:
    async with httpx.AsyncClient(base_url=api, timeout=10) as c:
        for _ in range(200):  # the store runs on idle CPU
            found = (await c.get("/api/requests/http")).json()["requests"]
            if found:
                return str(found[0]["id"])
            await asyncio.sleep(0.05)
    raise AssertionError("the relay's request was never stored")


async def app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    await writer.drain()
    writer.close()


async def replay_via_relay(host: str, tmp_path: Path) -> tuple[httpx.Response, Catcher]:
    catcher = Catcher()
    trap = await asyncio.start_server(catcher.handle, "127.0.0.1", 0)
    local = await asyncio.start_server(app, "127.0.0.1", 0)
    head = (
        f"POST /hooks HTTP/1.1\r\nHost: {host.format(trap=trap.sockets[0].getsockname()[1])}"
        "\r\nX-Forwarded-Proto: http\r\nAuthorization: Bearer real-secret\r\n"
        "Content-Length: 2\r\n\r\n{}"
    )

    async def script(side: Agentside) -> None:
        await side.send(welcome(url=PUBLIC))
        await side.send(p.Open(1, "203.0.113.9", 4000), p.Data(1, head.encode()), p.End(1))
        await side.until_closed()

    try:
        async with (
            fake_relay(script) as relay,
            molehill_process(
                "http", str(local.sockets[0].getsockname()[1]), "--relay", relay.url,
                "--subdomain", "pay", "--json", "--api", "127.0.0.1:0",
                env={"MOLEHILL_CAPTURE_FILE": str(tmp_path / "captures.sqlite3"),
                     "MOLEHILL_RESUME_FILE": str(tmp_path / "resume.json")},
            ) as agent,
        ):  # fmt: skip
            api = (await agent.json_err_until(lambda e: e.get("event") == "api"))["url"]
            assert json.loads(await agent.line())["event"] == "tunnel_open"
            exchange = await stored_id(api)
            async with httpx.AsyncClient(base_url=api, timeout=30) as c:
                answer = await c.post(
                    f"/api/requests/http/{exchange}/replay", json={"via_relay": True}
                )
            await asyncio.sleep(0.2)
            assert await agent.terminate() == 0
    finally:
        trap.close()
        local.close()
    return answer, catcher


async def test_a_replay_through_the_relay_never_goes_to_a_host_the_relay_chose(tmp_path):
    """Before: the replay went to http://127.0.0.1:TRAP with the original Authorization."""
    answer, catcher = await replay_via_relay("127.0.0.1:{trap}", tmp_path)
    assert catcher.received == [], "the replay went where the relay said"
    assert answer.status_code >= 400
    message = json.dumps(answer.json())
    assert "not for the tunnel's public host pay.example.test" in message


async def test_a_replay_of_a_request_for_the_public_host_goes_to_the_public_url(tmp_path):
    """The legitimate case: routed to pay.example.test, sent to the WELCOME's URL (which does
    not resolve here: the failure names it, proving where it went)."""
    answer, catcher = await replay_via_relay("PAY.example.test", tmp_path)
    assert catcher.received == []
    assert PUBLIC.removeprefix("http://") in json.dumps(answer.json())
