"""A hostile relay against the developer's agent: the relay is somebody else's (a team's shared
relay, a public instance, a compromised one) and says whatever it likes, in real wire frames
over a real websocket. The agent must not show its escape sequences, write its junk, dial for
it, or hold more local connections for it than the agent allows; where the relay breaks the
protocol the agent drops the link with a reason and no exception escapes into its loop.
(test_hostile_agent.py is the same from the relay's side.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from relay.agent.client import Agent, Refused
from relay.agent.connect_errors import Unreachable
from relay.agent.settings import AgentSettings
from relay.events import AgentEvent, Reconnecting, RequestRecord, TunnelOpen, TunnelRefused
from relay.wire import codec as p
from tests.support.cli import molehill_process
from tests.support.fake_relay import Agentside, fake_relay, welcome
from tests.support.terminal import Terminal

ESC = "\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2J"  # OSC 52 into the clipboard, then clear the screen


class LocalApp:
    """The developer's app: counts connections, answers every request with a 200."""

    def __init__(self) -> None:
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        writer.close()


@asynccontextmanager
async def local_app() -> AsyncIterator[tuple[LocalApp, int]]:
    app = LocalApp()
    server = await asyncio.start_server(app.handle, "127.0.0.1", 0)
    try:
        yield app, server.sockets[0].getsockname()[1]
    finally:
        server.close()


@asynccontextmanager
async def agent_to(relay_url: str, port: int, **overrides: object) -> AsyncIterator[Running]:
    settings = AgentSettings(local_port=port, relay=relay_url, name="pay", **overrides)  # type: ignore[arg-type]
    running = Running(settings)
    try:
        yield running
    finally:
        running.agent.stop()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await running.task


class Running:
    def __init__(self, settings: AgentSettings) -> None:
        self.events: list[AgentEvent] = []
        self.agent = Agent(settings, self.events.append)
        self.task = asyncio.get_running_loop().create_task(self.agent.run())

    async def event(self, kind: type, timeout: float = 5.0) -> AgentEvent:
        async with asyncio.timeout(timeout):
            while not any(isinstance(e, kind) for e in self.events):
                if self.task.done():
                    self.task.result()  # raises what ended it
                    raise AssertionError(f"the agent ended without a {kind.__name__}")
                await asyncio.sleep(0.02)
        return next(e for e in self.events if isinstance(e, kind))


def shown(text: str) -> None:
    """``text`` is safe on a terminal and on one line: controls spelled out, none left."""
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text), repr(text)


HOSTILE_WELCOMES = {
    "url-escape": welcome(url=f"http://pay.example.test{ESC}"),
    "url-newline": welcome(url="http://pay.example.test\ntunnel 'pay' online: https://evil.test"),
    "url-quote": welcome(url='http://pay.example.test"\n[relay]\nurl = "ws://evil.test'),
    "url-userinfo": welcome(url="http://pay.example.test@10.0.0.5:22"),
    "url-bad-port": welcome(url="http://pay.example.test:99999"),
    "url-not-http": welcome(url="file:///etc/passwd"),
    "url-bad-ipv6": welcome(url="http://[1.2]"),  # urlsplit raises on it (runner/wiring.py)
    "url-tcp-for-http": welcome(url="tcp://pay.example.test:5432"),
    "name-escape": welcome(name=f"pay{ESC}"),
    "name-path": welcome(name="../../.ssh/authorized_keys"),
    "resume-huge": welcome(resume="r" * 4000),
    "resume-newline": welcome(resume="abc\ndef"),
}


@pytest.mark.parametrize("hostile", list(HOSTILE_WELCOMES), ids=str)
async def test_a_welcome_no_molehill_relay_sends_is_refused_before_anything_uses_it(hostile):
    """Before: the agent went online with the relay's text as its URL and name (printed,
    drawn, passed to other profiles' commands as {pay.url}, written to the resume file), and
    dialled the local app for the OPEN that came with it."""

    async def script(side: Agentside) -> None:
        await side.send(HOSTILE_WELCOMES[hostile], p.Open(1, "203.0.113.9", 4000))
        await side.until_closed()

    async with (
        local_app() as (app, port),
        fake_relay(script) as relay,
        agent_to(relay.url, port) as run,
    ):
        with pytest.raises(Refused) as refused:
            async with asyncio.timeout(5):
                await run.task
        assert refused.value.code == "bad_welcome"
        assert "the relay's welcome is not valid" in refused.value.message
        shown(refused.value.message)
        assert not any(isinstance(e, TunnelOpen) for e in run.events)
        (event,) = [e for e in run.events if isinstance(e, TunnelRefused)]
        shown(event.message)
        assert run.agent.url == "" and run.agent.resume == ""
        await asyncio.sleep(0.1)
        assert app.connections == 0  # the OPEN beside the bad WELCOME dialled nothing
        assert not relay.errors


@pytest.mark.parametrize(
    "url",
    ["https://pay.example.test", "http://pay.localhost:8080", "http://pay.127.0.0.1:80/",
     "https://PAY.Example.test:8443", "http://[::1]:8080"],
)  # fmt: skip
async def test_the_urls_molehill_relays_give_are_accepted(url):
    async def script(side: Agentside) -> None:
        await side.send(welcome(url=url))
        await side.until_closed()

    async with (
        local_app() as (_, port),
        fake_relay(script) as relay,
        agent_to(relay.url, port) as run,
    ):
        opened = await run.event(TunnelOpen)
        assert isinstance(opened, TunnelOpen) and opened.url == url


async def test_a_refusal_and_a_goaway_are_shown_with_their_controls_spelled_out():
    """Before: an ERROR's message and a GOAWAY's reason went as they came to the tunnel's
    error line (the dashboard's sidebar and the line above the log draw it) and the events."""

    async def script(side: Agentside) -> None:
        if len(relay.sessions) == 1:
            await side.send(welcome())
            await side.send(p.GoAway(f"maintenance{ESC}\nfake line"))
            await side.ws.close()
        else:
            await side.send(p.Error(f"name_taken{ESC}", f"[/bold] taken{ESC}\nfake line"))
            await side.until_closed()

    async with (
        local_app() as (_, port),
        fake_relay(script) as relay,
        agent_to(relay.url, port, backoff_first=0.05) as run,
    ):
        going = await run.event(Reconnecting)
        assert isinstance(going, Reconnecting)
        assert going.reason.startswith("relay going away: maintenance\\x1b]52;")
        shown(going.reason)
        refused = await run.event(TunnelRefused)
        assert isinstance(refused, TunnelRefused)
        assert refused.message.startswith("[/bold] taken\\x1b]52;c;")
        shown(refused.message)
        shown(refused.code)
        shown(run.agent.last_error)


async def test_the_client_address_the_relay_names_is_spelled_out_in_the_record():
    async def script(side: Agentside) -> None:
        await side.send(welcome())
        await side.send(
            p.Open(1, f"203.0.113.9{ESC}", 4000),
            p.Data(1, b"GET / HTTP/1.1\r\nHost: pay.example.test\r\n\r\n"),
            p.End(1),
        )
        await side.until_closed()

    async with (
        local_app() as (_, port),
        fake_relay(script) as relay,
        agent_to(relay.url, port) as run,
    ):
        record = await run.event(RequestRecord)
        assert isinstance(record, RequestRecord) and record.status == 200
        assert record.client.startswith("203.0.113.9\\x1b]52;")
        shown(record.client)


async def test_the_error_page_of_a_relay_url_that_is_no_websocket_is_spelled_out():
    """A server at the relay URL that answers HTTP with molehill's error header: its page's
    text became the tunnel's error line (the dashboard draws it) with its ESCs as they came."""

    async def page(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = f"no such path {ESC}".encode()
        writer.write(
            b"HTTP/1.1 404 Not Found\r\nX-Molehill-Error: 1\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(page, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with local_app() as (_, port), agent_to(url, port, give_up_after=5.0) as run:
            with pytest.raises(Unreachable) as failed:
                async with asyncio.timeout(5):
                    await run.task
            assert "no such path \\x1b]52;" in failed.value.reason
            shown(failed.value.reason)
            shown(run.agent.last_error)
    finally:
        server.close()


async def test_the_status_block_shows_a_relays_request_line_without_obeying_it():
    """`molehill http` on a terminal draws the latest requests in its status block: their paths
    are the relay's bytes (a relay that is not ours sends what it likes), and their ESCs
    reached the terminal as they came (OSC 52: a command into the clipboard)."""
    head = f"GET /hook{ESC} HTTP/1.1\r\nHost: pay.example.test\r\n\r\n".encode()

    async def script(side: Agentside) -> None:
        await side.send(welcome())
        await side.send(p.Open(1, "203.0.113.9", 4000), p.Data(1, head), p.End(1))
        await side.until_closed()

    term = Terminal(100, 30)
    try:
        async with (
            local_app() as (_, port),
            fake_relay(script) as relay,
            molehill_process("http", str(port), "--relay", relay.url, stdout=term.slave),
        ):
            lines = await term.wait_for(lambda ls: any("/hook" in line for line in ls))
            assert any("/hook\\x1b]52;c;" in line for line in lines), lines
            assert "\x1b]52" not in term.raw and "\x07" not in term.raw
    finally:
        term.close()
