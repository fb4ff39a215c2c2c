"""The websocket data-frame fast path (relay/transport/ws_data.py), with no sockets: whole binary
frames come out as messages however the reads split them; anything else stops it at that frame's
first byte; websockets' own parser is recognised waiting at a frame boundary."""

from __future__ import annotations

import random
import struct

import pytest
from websockets.client import ClientProtocol
from websockets.frames import apply_mask
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from relay.transport.ws_data import DataFrames, at_frame_boundary

MASK = b"\x9a\x01\xfe\x42"


def frame(
    payload: bytes, first: int = 0x82, masked: bool = True, length: int | None = None
) -> bytes:
    """One frame as a client (masked) or a server sends it; ``length`` may lie."""
    size = len(payload) if length is None else length
    bit = 0x80 if masked else 0
    if size < 126:
        head = struct.pack("!BB", first, bit | size)
    elif size < 0x10000:
        head = struct.pack("!BBH", first, bit | 126, size)
    else:
        head = struct.pack("!BBQ", first, bit | 127, size)
    if masked:
        return head + MASK + apply_mask(payload, MASK)
    return head + payload


def split(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 12))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@pytest.mark.parametrize("masked", [True, False])
def test_binary_frames_come_out_whole_however_the_reads_split_them(masked):
    rng = random.Random(7 if masked else 8)
    for _ in range(300):
        payloads = [
            rng.randbytes(rng.choice([0, 1, 125, 126, 127, 300, 65535, 65536, 70000]))
            for _ in range(rng.randint(1, 5))
        ]
        stream = b"".join(frame(x, masked=masked) for x in payloads)
        reader = DataFrames(masked)
        got: list[bytes] = []
        for piece in split(stream, rng):
            messages, rest = reader.feed(piece, 1 << 20)
            assert rest == b""
            got += messages
        assert got == payloads
        assert reader.chunks == []


@pytest.mark.parametrize(
    "odd",
    [
        frame(b"ping", first=0x89),  # a ping
        frame(b"\x03\xe8", first=0x88),  # a close
        frame(b"text", first=0x81),  # text
        frame(b"part", first=0x02),  # the first fragment of a binary message
        frame(b"tail", first=0x80),  # a continuation
        frame(b"rsv1", first=0xC2),  # a reserved bit (no extension was agreed)
        frame(b"bare", masked=False),  # a client frame not masked
        frame(b"", length=2000),  # over the limit (only the header: the length is a claim)
        frame(b"", length=1 << 63),  # a 64-bit length with its top bit set
    ],
)
def test_anything_but_a_whole_binary_frame_goes_to_websockets_from_its_first_byte(odd):
    rng = random.Random(len(odd))
    before = [b"one", b"two" * 50]
    stream = b"".join(frame(x) for x in before) + odd + frame(b"after")
    for _ in range(50):
        reader = DataFrames(True)
        got: list[bytes] = []
        handed = b""
        for piece in split(stream, rng):
            if handed:
                handed += piece  # once stopped, the link gives websockets everything
                continue
            messages, rest = reader.feed(piece, 1000)
            got += messages
            handed = rest
        assert got == before
        assert handed == odd + frame(b"after")


def test_a_server_frame_masked_is_not_taken_on_the_agent_side():
    reader = DataFrames(False)
    data = frame(b"x", masked=True)
    assert reader.feed(data, 100) == ([], data)


def test_a_frame_still_arriving_is_kept_in_its_reads_not_copied_each_time():
    reader = DataFrames(False)
    payload = bytes(300_000)
    data = frame(payload, masked=False)
    pieces = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    for piece in pieces[:-1]:
        assert reader.feed(piece, 1 << 20) == ([], b"")
    assert len(reader.chunks) == len(pieces) - 1
    assert reader.feed(pieces[-1], 1 << 20) == ([payload], b"")


def test_the_header_of_an_oversize_frame_is_all_it_waits_for():
    reader = DataFrames(True)
    head = frame(b"", length=5_000_000)[:14]
    assert reader.feed(head[:5], 1 << 20) == ([], b"")
    assert reader.feed(head[5:], 1 << 20) == ([], head)


def _open_server() -> ServerProtocol:
    server = ServerProtocol()
    client = ClientProtocol(parse_uri("ws://example.com/"))
    request = client.connect()
    server.receive_data(b"".join([request.serialize()]))
    (event,) = server.events_received()
    server.send_response(server.accept(event))
    server.data_to_send()
    assert server.state is State.OPEN
    return server


def test_websockets_is_at_a_frame_boundary_only_between_frames():
    server = _open_server()
    assert at_frame_boundary(server)
    data = frame(b"hello")
    server.receive_data(data[:1])
    assert not at_frame_boundary(server)  # a byte of a header buffered
    server.receive_data(data[1:3])
    assert not at_frame_boundary(server)  # the header's first two bytes read, its mask not
    server.receive_data(data[3:])
    assert at_frame_boundary(server)
    server.receive_data(frame(b"part", first=0x02))
    assert not at_frame_boundary(server)  # a fragmented message under way
    server.receive_data(frame(b"tail", first=0x80))
    assert at_frame_boundary(server)
    assert [bytes(e.data) for e in server.events_received()] == [b"hello", b"part", b"tail"]
    server.receive_data(frame(b"\x03\xe8", first=0x88))
    assert not at_frame_boundary(server)  # closing


def test_a_handshake_under_way_is_not_a_frame_boundary():
    assert not at_frame_boundary(ServerProtocol())
