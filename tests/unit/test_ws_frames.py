"""The inspector's WebSocket frame reader against websockets' own (strict) frame parser, split
at every byte boundary, and against hostile input: it gives up quietly, never raises, never
holds more than a preview."""

from __future__ import annotations

import itertools
import os
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from relay.http.ws_frames import PREVIEW_BYTES, Deflate, WsFrameReader, negotiated_deflate

KIND = {Opcode.TEXT: "text", Opcode.BINARY: "binary"}
CONTROL = {Opcode.CLOSE: "close", Opcode.PING: "ping", Opcode.PONG: "pong"}


def reference(data: bytes, masked: bool) -> list[tuple[str, int, bytes]]:
    """Messages as websockets parses the frames: (kind, size, first PREVIEW_BYTES)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    out: list[tuple[str, int, bytes]] = []
    current: tuple[str, bytearray] | None = None
    while reader.buffer:
        gen = Frame.parse(reader.read_exact, mask=masked, extensions=[])
        try:
            next(gen)
        except StopIteration as done:
            frame = done.value
        if frame.opcode in CONTROL:
            out.append((CONTROL[frame.opcode], len(frame.data), bytes(frame.data[:PREVIEW_BYTES])))
            continue
        if frame.opcode is Opcode.CONT:
            assert current is not None
            current[1].extend(frame.data)
        else:
            current = (KIND[frame.opcode], bytearray(frame.data))
        if frame.fin:
            kind, payload = current
            out.append((kind, len(payload), bytes(payload[:PREVIEW_BYTES])))
            current = None
    return out


def read(data: bytes, masked: bool, cuts: list[int] | None = None) -> WsFrameReader:
    reader = WsFrameReader("in" if masked else "out", masked)
    reader.messages = []  # type: ignore[attr-defined]
    bounds = [0, *sorted(set(cuts or [])), len(data)]
    for a, b in itertools.pairwise(bounds):
        reader.messages += reader.feed(data[a:b], 1.0)  # type: ignore[attr-defined]
    return reader


def seen(reader: WsFrameReader) -> list[tuple[str, int, bytes]]:
    return [(m.kind, m.size, m.preview) for m in reader.messages]  # type: ignore[attr-defined]


payloads = st.one_of(
    st.binary(max_size=40),
    st.binary(min_size=120, max_size=140),  # around the 7-bit length limit (125)
    st.binary(min_size=300, max_size=700),  # 16-bit lengths, more than a preview
)


@st.composite
def conversations(draw: st.DrawFn) -> list[Frame]:
    """Valid frame sequences: fragmented messages with control frames between fragments."""
    frames: list[Frame] = []
    for _ in range(draw(st.integers(1, 6))):
        opcode = draw(st.sampled_from([Opcode.TEXT, Opcode.BINARY]))
        pieces = draw(st.lists(payloads, min_size=1, max_size=4))
        for i, piece in enumerate(pieces):
            first, last = i == 0, i == len(pieces) - 1
            frames.append(Frame(opcode if first else Opcode.CONT, piece, fin=last))
            if draw(st.booleans()):
                control = draw(st.sampled_from([Opcode.PING, Opcode.PONG]))
                frames.append(Frame(control, draw(st.binary(max_size=125))))
    if draw(st.booleans()):
        frames.append(Frame(Opcode.CLOSE, b"\x03\xe8" + draw(st.binary(max_size=20))))
    return frames


@settings(max_examples=150, deadline=None)
@given(conversations(), st.booleans(), st.data())
def test_frames_split_anywhere_read_as_websockets_parses_them(frames, masked, data):
    wire = b"".join(f.serialize(mask=masked, extensions=[]) for f in frames)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=12))
    reader = read(wire, masked, cuts)
    assert not reader.broken
    assert seen(reader) == reference(wire, masked)


def test_every_single_byte_boundary():
    frames = [
        Frame(Opcode.TEXT, b"hello " * 30, fin=False),
        Frame(Opcode.PING, b"are you there"),
        Frame(Opcode.CONT, "wörld".encode() * 10, fin=True),
        Frame(Opcode.BINARY, os.urandom(70_000)),  # a 64-bit length on the wire
        Frame(Opcode.CLOSE, b"\x03\xe8bye"),
    ]
    for masked in (True, False):
        wire = b"".join(f.serialize(mask=masked, extensions=[]) for f in frames)
        want = reference(wire, masked)
        assert [k for k, _, _ in want] == ["ping", "text", "binary", "close"]
        assert want[2][1] == 70_000
        for cut in range(0, 400):  # every boundary through the headers and previews
            assert seen(read(wire, masked, [cut])) == want
        one_by_one = read(wire[:1200], masked, list(range(1200)))
        assert seen(one_by_one) == want[:2]


def test_a_huge_claimed_length_costs_only_a_preview():
    # A 64-bit length of 2**62 bytes: counted down, never buffered.
    head = bytes([0x82, 127]) + (2**62).to_bytes(8, "big")
    reader = WsFrameReader("out", False)
    assert reader.feed(head, 1.0) == []
    for _ in range(64):
        assert reader.feed(b"\x00" * 65536, 1.0) == []
    assert reader._remaining == 2**62 - 64 * 65536
    assert reader._data is not None and len(reader._data.preview) == PREVIEW_BYTES


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        (bytes([0x83, 0]), "unknown opcode"),
        (bytes([0x09, 0]), "control frame fragmented"),
        (bytes([0x89, 126, 0, 200]) + b"x" * 200, "longer than 125"),
        (bytes([0x80, 1, 0x61]), "continuation frame with no message"),
        (bytes([0x01, 1, 0x61, 0x81, 1, 0x62]), "before the last one's final frame"),
        (bytes([0xC1, 1, 0x61]), "RSV1 set without permessage-deflate"),
        (bytes([0xA1, 1, 0x61]), "RSV2/RSV3"),
        (bytes([0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]), "top bit"),
        (bytes([0x81, 0x81, 1, 2, 3, 4, 0x60]), "server frame masked"),
    ],
)
def test_malformed_frames_stop_reading_without_an_exception(wire, why):
    good = Frame(Opcode.TEXT, b"before").serialize(mask=False, extensions=[])
    after = Frame(Opcode.TEXT, b"after").serialize(mask=False, extensions=[])
    reader = read(good + wire + after, False)
    assert why in reader.broken
    assert seen(reader) == [("text", 6, b"before")]  # what came first is kept
    assert reader.feed(after, 2.0) == []  # and nothing more is read


def test_an_unmasked_client_frame_stops_reading():
    reader = read(Frame(Opcode.TEXT, b"hi").serialize(mask=False, extensions=[]), True)
    assert "client frame not masked" in reader.broken


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.booleans(), st.lists(st.integers(0, 2000), max_size=8))
def test_random_bytes_never_raise_and_keep_little(data, masked, cuts):
    reader = read(data, masked, [c for c in cuts if c <= len(data)])
    for m in reader.messages:  # type: ignore[attr-defined]
        assert len(m.preview) <= PREVIEW_BYTES and m.size >= len(m.preview)
    assert len(reader._head) <= 14


def test_deflate_terms_from_the_handshake():
    both = "permessage-deflate; server_no_context_takeover; client_max_window_bits=12"
    assert negotiated_deflate(both, client_to_server=False).no_context_takeover
    assert not negotiated_deflate(both, client_to_server=True).no_context_takeover
    assert negotiated_deflate(both, client_to_server=True).enabled
    assert not negotiated_deflate("x-webkit-deflate-frame", True).enabled


def _deflated(text: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    out = c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def test_compressed_messages_are_marked_and_inflated_only_when_cheap():
    text = b'{"hello": "world"} ' * 50
    payload = _deflated(text)
    frame = bytes([0xC1, len(payload)]) if len(payload) < 126 else None
    assert frame is not None
    wire = frame + payload
    alone = WsFrameReader("out", False, Deflate(True, no_context_takeover=True))
    [m] = alone.feed(wire, 1.0)
    assert m.compressed and m.size == len(payload)
    assert m.preview == text[:PREVIEW_BYTES]
    shared = WsFrameReader("out", False, Deflate(True, no_context_takeover=False))
    [m] = shared.feed(wire, 1.0)
    assert m.compressed and m.preview == b""  # would need every earlier message: not read


def test_a_zip_bomb_inflates_no_more_than_a_preview():
    bomb = _deflated(b"\x00" * 50_000_000)
    head = bytes([0xC2, 127]) + len(bomb).to_bytes(8, "big")
    reader = WsFrameReader("out", False, Deflate(True, no_context_takeover=True))
    [m] = reader.feed(head + bomb, 1.0)
    assert m.preview == b"\x00" * PREVIEW_BYTES and m.size == len(bomb)


def count(data: bytes, masked: bool, cuts: list[int]) -> tuple[int, str]:
    reader = WsFrameReader("in" if masked else "out", masked)
    bounds = [0, *sorted(set(cuts)), len(data)]
    return sum(reader.count(data[a:b]) for a, b in itertools.pairwise(bounds)), reader.broken


@settings(max_examples=150, deadline=None)
@given(conversations(), st.booleans(), st.data())
def test_counting_finds_the_messages_reading_finds(frames, masked, data):
    """A full log counts messages by their headers: as many as feed would return, however the
    reads split them, fragments and control frames between whole frames included."""
    wire = b"".join(f.serialize(mask=masked, extensions=[]) for f in frames)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=12))
    assert count(wire, masked, cuts) == (len(reference(wire, masked)), "")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.booleans(), st.lists(st.integers(0, 2000), max_size=8))
def test_counting_random_bytes_agrees_with_reading_them(data, masked, cuts):
    cuts = [c for c in cuts if c <= len(data)]
    reader = read(data, masked, cuts)
    assert count(data, masked, cuts) == (len(reader.messages), reader.broken)  # type: ignore[attr-defined]


def test_counting_still_stops_at_a_malformed_frame():
    good = Frame(Opcode.BINARY, b"x" * 200).serialize(mask=True, extensions=[])
    bad = bytes([0x82, 0x01, 0x61])  # a client frame not masked
    assert count(good * 3 + bad + good, True, []) == (3, "a client frame not masked")
