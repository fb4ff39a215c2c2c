"""The relay's agents' port reading hand-made websocket frames over a real socket, split anywhere:
whole binary frames take the link's fast path, websocket pings, fragments and close frames go
through websockets at a frame boundary, and whatever breaks the rules still closes the link with
websockets' code (relay/transport/ws_data.py)."""

from __future__ import annotations

import asyncio
import random
import struct

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode, apply_mask
from websockets.http11 import Response
from websockets.uri import parse_uri

from relay.wire import codec as p
from tests.support.stack import running_relay

MASK = b"\x11\x22\x33\x44"


def ws_frame(payload: bytes, first: int = 0x82, masked: bool = True) -> bytes:
    size = len(payload)
    bit = 0x80 if masked else 0
    if size < 126:
        head = struct.pack("!BB", first, bit | size)
    elif size < 0x10000:
        head = struct.pack("!BBH", first, bit | 126, size)
    else:
        head = struct.pack("!BBQ", first, bit | 127, size)
    return head + MASK + apply_mask(payload, MASK) if masked else head + payload


class RawAgent:
    """A websocket client whose frames are written by hand; what comes back is read by
    websockets' own client protocol (sans-I/O)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.ws = ClientProtocol(parse_uri("ws://127.0.0.1/"), max_size=None)

    @classmethod
    async def connect(cls, port: int) -> RawAgent:
        agent = cls(*await asyncio.open_connection("127.0.0.1", port))
        agent.ws.send_request(agent.ws.connect())
        for chunk in agent.ws.data_to_send():
            agent.writer.write(chunk)
        (response,) = await agent.events(1)
        assert isinstance(response, Response) and response.status_code == 101
        return agent

    async def write(self, data: bytes, pieces: int = 1, rng: random.Random | None = None) -> None:
        """Write ``data`` in ``pieces`` writes cut at random places, each drained alone."""
        rng = rng or random.Random(pieces)
        cuts = sorted(rng.sample(range(1, len(data)), min(pieces - 1, len(data) - 1)))
        for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
            self.writer.write(data[a:b])
            await self.writer.drain()
            await asyncio.sleep(0)

    async def events(self, count: int) -> list[object]:
        got: list[object] = []
        async with asyncio.timeout(5):
            while len(got) < count:
                data = await self.reader.read(65536)
                if not data:
                    self.ws.receive_eof()
                    break
                self.ws.receive_data(data)
                got += self.ws.events_received()
        return got

    async def frames(self, count: int) -> list[p.Frame | Frame]:
        """The next ``count`` items: molehill frames of binary messages, and control frames."""
        out: list[p.Frame | Frame] = []
        async with asyncio.timeout(5):
            while len(out) < count:
                for event in await self.events(1):
                    assert isinstance(event, Frame)
                    if event.opcode is Opcode.BINARY:
                        data = bytes(event.data)
                        out += [f for f in p.decode_all(data) if not isinstance(f, p.Ping)]
                    else:
                        out.append(event)
        return out

    async def close_code(self) -> int | None:
        async with asyncio.timeout(5):
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                self.ws.receive_data(data)
                self.ws.events_received()
        return self.ws.close_rcvd.code if self.ws.close_rcvd else None

    def close(self) -> None:
        self.writer.close()


def hello(name: str) -> bytes:
    return p.encode_message(p.Hello(p.VERSION, name, "", "", p.DEFAULT_WINDOW))


def ping(n: int) -> bytes:
    return p.encode_message(p.Ping(n))


@pytest.mark.parametrize("pieces", [1, 3, 40])
async def test_pings_fragments_and_binary_frames_interleaved_are_all_answered(pieces):
    """HELLO, then in one stream of bytes (written in ``pieces`` cuts): a molehill PING, a
    websocket ping, a PING message in two fragments with a websocket ping between them, and a
    last PING. The relay answers each, in order: websockets' pongs and the session's PONGs."""
    async with running_relay(ping_interval=60.0) as relay:
        agent = await RawAgent.connect(relay.agents_port)
        try:
            await agent.write(ws_frame(hello(f"fast{pieces}")), pieces)
            (welcome,) = await agent.frames(1)
            assert isinstance(welcome, p.Welcome)
            second = ping(2)
            stream = b"".join(
                [
                    ws_frame(ping(1)),
                    ws_frame(b"are you there", first=0x89),
                    ws_frame(second[:3], first=0x02),
                    ws_frame(b"between", first=0x89),
                    ws_frame(second[3:], first=0x80),
                    ws_frame(ping(3)),
                ]
            )
            await agent.write(stream, pieces)
            got = await agent.frames(5)
            pongs = [(type(f).__name__, getattr(f, "payload", None)) for f in got]
            assert ("Pong", 1) in pongs and ("Pong", 2) in pongs and ("Pong", 3) in pongs
            control = [bytes(f.data) for f in got if isinstance(f, Frame)]
            assert control == [b"are you there", b"between"]
            order = [f.payload for f in got if isinstance(f, p.Pong)]
            assert order == [1, 2, 3]
        finally:
            agent.close()


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        pytest.param(ws_frame(b"text", first=0x81), 1002, id="text"),
        pytest.param(ws_frame(b"x", masked=False), 1002, id="unmasked"),
        pytest.param(ws_frame(b"x", first=0xC2), 1002, id="rsv1"),
        pytest.param(ws_frame(b"x", first=0x80), 1002, id="continuation of nothing"),
        pytest.param(ws_frame(bytes(40_000)), 1009, id="over HELLO_MAX before HELLO"),
    ],
)
async def test_frames_the_fast_path_does_not_take_are_judged_by_websockets(bad, code):
    async with running_relay() as relay:
        agent = await RawAgent.connect(relay.agents_port)
        try:
            # Before HELLO the limit is HELLO_MAX: the oversize frame is refused by its header.
            first = b""
            if code != 1009:
                await agent.write(ws_frame(hello("judged")))
                (welcome,) = await agent.frames(1)
                assert isinstance(welcome, p.Welcome)
                first = ws_frame(ping(1))  # a whole frame first: the fast path is engaged
            await agent.write(first + bad, 2)
            assert await agent.close_code() == code
        finally:
            agent.close()


async def test_a_fragmented_message_may_not_be_interrupted_by_a_whole_binary_frame():
    """websockets' rule (a new data message before the last one's final fragment is a protocol
    error) holds although whole binary frames normally skip it."""
    async with running_relay() as relay:
        agent = await RawAgent.connect(relay.agents_port)
        try:
            await agent.write(ws_frame(hello("frag")))
            await agent.frames(1)
            await agent.write(ws_frame(ping(1)[:2], first=0x02) + ws_frame(ping(2)))
            assert await agent.close_code() == 1002
        finally:
            agent.close()
