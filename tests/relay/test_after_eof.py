"""After the relay half-closes a visitor's connection (the app closed its end), what the visitor
still sends is ignored: no page is written after the EOF, nothing breaks the loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tests.relay.helpers import closed_within, open_from
from tests.support.stack import agent_for, raw_request, read_response, running_relay

CLOSE_DELIMITED = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close"
EARLY_413 = b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n"


@asynccontextmanager
async def app_that_answers_and_closes(answer: bytes, errors: list[dict]) -> AsyncIterator[int]:
    """A local app that reads a request head, answers ``answer`` and closes; the port. The loop's
    errors (a protocol's data_received that raised) go to ``errors``."""
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: errors.append(context))

    async def app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()  # the agent sends END: the relay writes EOF to the visitor

    server = await asyncio.start_server(app, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
        await asyncio.sleep(0.05)  # a late callback's error is counted too
    finally:
        server.close()
        loop.set_exception_handler(None)


async def test_bytes_after_a_close_delimited_response_are_ignored_without_an_error():
    errors: list[dict] = []
    async with (
        app_that_answers_and_closes(CLOSE_DELIMITED, errors) as port,
        running_relay(head_timeout=1.0) as relay,
        agent_for(relay, port, "closes") as t,
    ):
        # Each follow-up: a malformed request (a 400 page would be written), a good one (it
        # would open a stream whose answer has nowhere to go), a bare line.
        for after in (b"NOT HTTP\r\n\r\n", raw_request(t.host, "/again"), b"\r\n"):
            reader, writer = await open_from(relay.http_port)
            writer.write(raw_request(t.host, "/"))
            response = await read_response(reader)
            assert (response.status, response.body) == (200, b"until the close")
            writer.write(after)  # the relay's side is already at EOF
            await closed_within(reader, 5)
            writer.close()
        # The relay serves the next visitor as before.
        reader, writer = await open_from(relay.http_port)
        writer.write(raw_request(t.host, "/last"))
        assert (await read_response(reader)).status == 200
        writer.close()
    assert errors == [], [e.get("message") for e in errors]


async def test_a_bad_body_after_an_early_answer_and_close_writes_no_page_after_the_eof():
    """An app that answers before the body is in and closes (an upload refused early): the relay
    has written EOF to the visitor; a malformed chunk that comes next used to make it write a
    400 page after that EOF (RuntimeError in data_received, "Fatal error" on the loop)."""
    errors: list[dict] = []
    async with (
        app_that_answers_and_closes(EARLY_413, errors) as port,
        running_relay() as relay,
        agent_for(relay, port, "early") as tunnel,
    ):
        head = (
            f"POST /upload HTTP/1.1\r\nHost: {tunnel.host}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        ).encode()
        reader, writer = await open_from(relay.http_port)
        writer.write(head)
        assert (await read_response(reader)).status == 413
        await asyncio.sleep(0.2)  # the agent's END reaches the relay: it writes EOF
        writer.write(b"zz\r\n")  # not a chunk size: a 400 if anything could be written
        assert await closed_within(reader, 5) == b""
        writer.close()
    assert errors == [], [e.get("message") for e in errors]
