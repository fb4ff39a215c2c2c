"""A visitor picks where a replay goes: a captured request whose Host names the visitor's own server
(routed by an absolute-form target, or by a Host with userinfo), replayed --via-relay and
re-signed with the developer's webhook secret. It must reach the relay's tunnel, never that host;
curl and HAR exports must not point at it either."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import httpx
import pytest

from inspector import CaptureSettings, open_store
from inspector.export import curl_command, har_entry
from inspector.message import ReplayRequest
from inspector.public_host import routed_authority
from inspector.replay import NotReplayable, destination
from tests.inspector.records import fill, observe, request_bytes, response_bytes
from tests.inspector.test_webhook_replay import SECRET, stale_signature, webhook_app
from tests.support.cli import molehill_process
from tests.support.stack import running_relay


class Catcher:
    """The visitor's own server: counts and keeps whatever reaches it."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with_head = await reader.read(65536)
        self.received.append(with_head)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()


async def test_via_relay_replay_goes_to_the_tunnel_not_the_visitors_host(tmp_path):
    store = tmp_path / "captures.sqlite3"
    catcher = Catcher()
    trap = await asyncio.start_server(catcher.handle, "127.0.0.1", 0)
    trap_port = trap.sockets[0].getsockname()[1]
    body = json.dumps({"id": "evt_forged", "type": "invoice.paid"}).encode()
    env = {"MOLEHILL_CAPTURE_FILE": str(store), "HOOK_SECRET": SECRET}
    try:
        async with (
            webhook_app() as app_port,
            running_relay() as relay,
            molehill_process(
                "http", str(app_port), "--relay", relay.agents_url, "--subdomain", "pay",
                "--json", "--api", "127.0.0.1:0", "--webhook-secret", "stripe=env:HOOK_SECRET",
                env=env,
            ) as agent,
        ):  # fmt: skip
            api = (await agent.json_err_until(lambda e: e.get("event") == "api"))["url"]
            assert json.loads(await agent.line())["event"] == "tunnel_open"
            public = f"pay.localhost:{relay.http_port}"
            # The relay routes an absolute-form request by its authority (RFC 9112 3.2.2);
            # the Host header, carried on as sent, names the visitor's server.
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.http_port)
            writer.write(
                f"POST http://{public}/hooks/stripe HTTP/1.1\r\nHost: 127.0.0.1:{trap_port}\r\n"
                f"Stripe-Signature: {stale_signature(body)}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            assert (await asyncio.wait_for(reader.read(), 20)).startswith(b"HTTP/1.1 400")
            writer.close()
            json.loads(await agent.line())
            async with httpx.AsyncClient(base_url=api, timeout=30) as c:
                found: list = []
                for _ in range(200):  # the store runs on idle CPU
                    found = (await c.get("/api/requests/http")).json()["requests"]
                    if found:
                        break
                    await asyncio.sleep(0.05)
                assert found, "the visitor's request was never stored"
                answer = await c.post(
                    f"/api/requests/http/{found[0]['id']}/replay", json={"via_relay": True}
                )
            assert catcher.received == [], "the re-signed webhook went to the visitor's host"
            outcome = answer.json()
            assert answer.status_code == 200, outcome
            assert outcome["url"] == f"http://{public}" and outcome["status_code"] == 200
            assert any("re-signed the stripe webhook" in n for n in outcome["notes"])
            assert await agent.terminate() == 0
    finally:
        trap.close()


@pytest.mark.parametrize(
    ("target", "host", "expected"),
    [
        ("/x", "pay.example.com", "pay.example.com"),
        ("/x", "pay.example.com:8443", "pay.example.com:8443"),
        ("/x", "[::1]:8080", "[::1]:8080"),
        ("http://pay.example.com/x", "evil.example", "pay.example.com"),
        ("HTTP://pay.example.com:81/x?y", "evil.example", "pay.example.com:81"),
        ("//evil.example/x", "pay.example.com", "pay.example.com"),  # a path, not a host
        ("/x", "pay.example.com:1@evil.example", None),  # userinfo: the URL's host is evil
        ("/x", "evil.example/.pay.example.com", None),
        ("/x", "evil.example#.pay.example.com", None),
        ("/x", "evil.example?.pay.example.com", None),
        ("/x", "pay example.com", None),
        ("/x", "", None),
        ("/x", None, None),
    ],
)
def test_the_routed_authority_is_a_plain_host(target, host, expected):
    assert routed_authority(target, host) == expected


def test_via_relay_refuses_a_host_that_is_not_a_host_name(tmp_path):
    stored = fill_one("/hooks", "pay.localhost:1@evil.example", tmp_path)
    request = ReplayRequest("POST", "/hooks", [("Host", "pay.localhost:1@evil.example")])
    with pytest.raises(NotReplayable, match="not a host name"):
        destination(stored, request, None, True)
    # Without --via-relay the destination is the tunnel's app, whatever the target names.
    app = dataclasses.replace(stored, target="http://127.0.0.1:3000")
    for target in ("//evil.example/x", "http://evil.example/x"):
        odd = ReplayRequest("POST", target, [("Host", "evil.example")])
        assert destination(app, odd, None, False) == "http://127.0.0.1:3000"
    forged = ReplayRequest(
        "POST", "/h", [("Host", "pay.localhost"), ("X-Forwarded-Proto", "http://evil.example#")]
    )
    assert destination(stored, forged, None, True) == "https://pay.localhost"


def test_curl_and_har_never_point_at_a_host_with_userinfo(tmp_path):
    stored = fill_one("/hooks", "pay.localhost:1@evil.example", tmp_path)
    command, warnings = curl_command(stored)
    assert "evil.example'" not in command.rsplit(" ", 1)[1]
    assert command.endswith("https://localhost")
    assert any("--url" in w for w in warnings)
    assert har_entry(stored)["request"]["url"] == "https://localhost/hooks"
    absolute = fill_one("http://pay.example.com/hooks?a=1", "evil.example", tmp_path / "b")
    assert har_entry(absolute)["request"]["url"] == "https://pay.example.com/hooks?a=1"
    assert curl_command(absolute)[0].endswith("https://pay.example.com")


def fill_one(target: str, host: str, folder: Path):
    """One exchange with this target and Host, stored by a real writer and read back."""
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "c.sqlite3"
    request = request_bytes("POST", target, body=b"{}", host=host)
    fill(file, [("web", observe(request, response_bytes(200)))])
    with open_store(CaptureSettings(path=file)) as store:
        found = store.get(1)
    assert found is not None
    return found


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:6379", "10.0.0.5:8080", "[::1]:8080", "localhost:5432", "db", "intranet:80"],
)
def test_via_relay_refuses_a_host_no_relay_routes_a_tunnel_by(tmp_path, host):
    # A relay that is not yours writes the Host a request arrives with. No molehill relay routes
    # a tunnel by an IP address or a one-label name (tunnels are NAME.DOMAIN), so such a request
    # was not routed by one, and a replay through the relay would go to that host on your
    # network (the CLI reads only the store: it does not know the tunnel's public URL).
    stored = fill_one("/hooks", host, tmp_path)
    request = ReplayRequest("POST", "/hooks", [("Host", host)])
    with pytest.raises(NotReplayable, match="no molehill relay routes a tunnel by"):
        destination(stored, request, None, True)
    # --target says where, and is used as given.
    assert destination(stored, request, "https://pay.example.com", True) == (
        "https://pay.example.com"
    )


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("pay.localhost:8080", "https://pay.localhost:8080"),
        ("pay.tunnels.example.com", "https://pay.tunnels.example.com"),
        ("pay.example.com.", "https://pay.example.com."),
    ],
)
def test_via_relay_goes_to_the_names_relays_route_by(tmp_path, host, url):
    stored = fill_one("/hooks", host, tmp_path)
    assert destination(stored, ReplayRequest("POST", "/hooks", [("Host", host)]), None, True) == url


async def test_the_cli_refuses_to_replay_through_the_relay_to_a_local_address(tmp_path):
    from tests.support.cli import run_molehill

    trap = Catcher()
    server = await asyncio.start_server(trap.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        stored = fill_one("/hooks", f"127.0.0.1:{port}", tmp_path)
        done = await run_molehill(
            "requests", "replay", str(stored.id), "--via-relay",
            env={"MOLEHILL_CAPTURE_FILE": str(tmp_path / "c.sqlite3")},
        )  # fmt: skip
    finally:
        server.close()
    assert done.code == 1, (done.out, done.err)
    assert "no molehill relay routes a tunnel by" in done.err and "--target" in done.err
    assert trap.received == []  # nothing reached the local address
