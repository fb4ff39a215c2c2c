"""A visitor connection carries requests for several tunnels: the bytes of one request reach
only that request's tunnel, whatever the read boundaries; responses reach the visitor only as
framed answers to its requests; a refused request in a pipeline lets earlier answers through."""

from __future__ import annotations

import asyncio

import pytest

from relay.wire import codec as p
from tests.relay.helpers import closed_within, first_frame_of, open_from, raw_agent
from tests.security.public_apps import basic, header, recording_app
from tests.support.stack import agent_for, raw_request, read_response, running_relay

CREDENTIALS = "ann:s3cret"


def auth_ok(head: bytes) -> bool:
    return header(head, "authorization") == [basic(CREDENTIALS)[1]]


async def read_all(reader: asyncio.StreamReader, most: int) -> list[int]:
    """The statuses of the responses, until ``most`` came or the relay closed the connection."""
    statuses: list[int] = []
    try:
        while len(statuses) < most:
            statuses.append((await read_response(reader, timeout=5)).status)
    except (asyncio.IncompleteReadError, ConnectionResetError):
        pass
    return statuses


def smuggling_pair(open_host: str, auth_host: str, credentials: bool) -> tuple[bytes, bytes]:
    """Request A to the open tunnel, whose body is a credential-less request to the auth
    tunnel; request B to the auth tunnel (as a pooling proxy would send it next)."""
    smuggled = raw_request(auth_host, "/smuggled", headers=[("X-Forwarded-For", "6.6.6.6")])
    a = raw_request(open_host, "/a", "POST", body=smuggled)
    b = raw_request(auth_host, "/b", headers=[basic(CREDENTIALS)] if credentials else [])
    return a, b


@pytest.mark.parametrize("credentials", [True, False], ids=["b-signed-in", "b-anonymous"])
async def test_a_body_never_reaches_the_next_requests_tunnel(credentials):
    async with (
        recording_app("open", early=True) as open_app,
        recording_app("auth") as auth_app,
        running_relay() as relay,
        agent_for(relay, open_app.port, "open") as open_t,
        agent_for(relay, auth_app.port, "auth", basic_auth=CREDENTIALS) as auth_t,
    ):
        a, b = smuggling_pair(open_t.host, auth_t.host, credentials)
        head_a = a.index(b"\r\n\r\n") + 4
        splits = [None, 1, head_a, head_a + 7, len(a) - 1, len(a), len(a) + 5]
        for split in splits:
            reader, writer = await open_from(relay.http_port)
            data = a + b
            if split is None:
                writer.write(data)
            else:
                writer.write(data[:split])
                await asyncio.sleep(0.15)  # the open app answers A before its body is in
                writer.write(data[split:])
            statuses = await read_all(reader, 2)
            writer.close()
            for head in auth_app.heads:
                assert auth_ok(head), (split, head)
            assert b"/smuggled" not in b"".join(auth_app.heads), split
            assert statuses[:1] == [200], (split, statuses)  # A's answer is never lost
        # the open app got the whole of each body as a body, never as a request
        assert set(open_app.targets()) == {"/a"}
        assert set(auth_app.targets()) <= {"/b"}


async def test_a_refused_request_in_a_pipeline_lets_earlier_answers_through():
    async with (
        recording_app("auth", delay=0.2) as app,
        running_relay() as relay,
        agent_for(relay, app.port, "auth", basic_auth=CREDENTIALS) as tunnel,
    ):
        reader, writer = await open_from(relay.http_port)
        signed = [basic(CREDENTIALS)]
        writer.write(
            raw_request(tunnel.host, "/1", headers=signed)
            + raw_request(tunnel.host, "/2")
            + raw_request(tunnel.host, "/3", headers=signed)
        )
        first = await read_response(reader)
        assert (first.status, first.body) == (200, b"auth GET /1")
        second = await read_response(reader)
        assert second.status == 401
        assert await closed_within(reader, 3) == b""
        writer.close()
        assert app.targets() == ["/1"]


async def test_a_later_request_without_host_gets_400_after_earlier_answers():
    async with (
        recording_app("app") as app,
        running_relay() as relay,
        agent_for(relay, app.port, "app") as tunnel,
    ):
        reader, writer = await open_from(relay.http_port)
        writer.write(raw_request(tunnel.host, "/1"))
        assert (await read_response(reader)).status == 200
        writer.write(b"GET /2 HTTP/1.1\r\nAccept: */*\r\n\r\n")
        page = await read_response(reader)
        assert page.status == 400 and b"Host" in page.body
        assert await closed_within(reader, 3) == b""
        writer.close()
        assert app.targets() == ["/1"]


async def test_an_absolute_form_target_routes_by_its_authority():
    async with (
        recording_app("open") as open_app,
        recording_app("auth") as auth_app,
        running_relay() as relay,
        agent_for(relay, open_app.port, "open") as open_t,
        agent_for(relay, auth_app.port, "auth", basic_auth=CREDENTIALS) as auth_t,
    ):
        # The authority names the auth tunnel, the Host the open one: RFC 9112 3.2.2 says the
        # authority wins, so the auth tunnel's rules apply.
        head = f"GET http://{auth_t.host}/x HTTP/1.1\r\nHost: {open_t.host}\r\n\r\n".encode()
        reader, writer = await open_from(relay.http_port)
        writer.write(head)
        assert (await read_response(reader)).status == 401
        writer.close()
        reader, writer = await open_from(relay.http_port)
        signed = head[:-2] + f"{basic(CREDENTIALS)[0]}: {basic(CREDENTIALS)[1]}\r\n\r\n".encode()
        writer.write(signed)
        # A gateway forwards origin-form, with the Host it routed by (RFC 9112 3.2.2): the app
        # never sees the visitor's Host, which named another tunnel (or any host at all).
        assert (await read_response(reader)).body == b"auth GET /x"
        writer.close()
        assert open_app.heads == []
        forwarded = auth_app.heads[-1]
        assert f"\r\nHost: {auth_t.host}\r\n".encode() in forwarded
        assert open_t.host.encode() not in forwarded


@pytest.mark.parametrize(
    ("scheme", "status"), [("Basic", 200), ("basic", 200), ("BASIC", 200), ("Bearer", 401)]
)
async def test_the_basic_scheme_is_case_insensitive(scheme, status):
    token = basic(CREDENTIALS)[1].split(" ", 1)[1]
    async with (
        recording_app("auth") as app,
        running_relay() as relay,
        agent_for(relay, app.port, "auth", basic_auth=CREDENTIALS) as tunnel,
    ):
        reader, writer = await open_from(relay.http_port)
        writer.write(raw_request(tunnel.host, headers=[("Authorization", f"{scheme} {token}")]))
        assert (await read_response(reader)).status == status
        writer.close()


async def test_two_authorization_headers_get_400():
    async with (
        recording_app("auth") as app,
        running_relay() as relay,
        agent_for(relay, app.port, "auth", basic_auth=CREDENTIALS) as tunnel,
    ):
        reader, writer = await open_from(relay.http_port)
        writer.write(
            raw_request(tunnel.host, headers=[basic(CREDENTIALS), ("Authorization", "Basic x")])
        )
        assert (await read_response(reader)).status == 400
        assert await closed_within(reader, 3) == b""
        writer.close()
        assert app.heads == [] and app.connections == 0


SECOND = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nforged!!!"


async def test_a_second_answer_from_the_local_app_is_dropped():
    async with (
        recording_app("app", extra=SECOND) as app,
        running_relay() as relay,
        agent_for(relay, app.port, "app") as tunnel,
    ):
        reader, writer = await open_from(relay.http_port)
        writer.write(raw_request(tunnel.host, "/1"))
        first = await read_response(reader)
        assert first.body == b"app GET /1"
        assert await closed_within(reader, 3) == b""  # no second answer: the connection ends
        writer.close()


async def test_a_hostile_agent_cannot_answer_twice():
    async with running_relay() as relay, raw_agent(relay, "rogue") as (ws, welcome):
        assert isinstance(welcome, p.Welcome)
        reader, writer = await open_from(relay.http_port)
        writer.write(raw_request(f"rogue.localhost:{relay.http_port}", "/1"))
        opened = await first_frame_of(ws, p.Open)
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        await ws.send(p.encode_message(p.Data(opened.stream, answer + SECOND)))
        assert (await read_response(reader)).body == b"ok"
        assert await closed_within(reader, 3) == b""
        writer.close()
