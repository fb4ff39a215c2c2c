"""The inspector's event-stream reader against a whole-stream reading of the WHATWG rules, split at
every boundary; hostile streams (endless lines, random bytes) cost no memory and never raise."""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.http.sse import Dechunker, SseReader

PREVIEW = 256


def reference(stream: bytes) -> list[tuple[str, int, bytes, str]]:
    """(event, data size, data preview, last id) per dispatched event: the spec, all at once."""
    if stream.startswith(b"\xef\xbb\xbf"):
        stream = stream[3:]
    lines = re.split(rb"\r\n|\r|\n", stream)[:-1]  # the last piece has no line end yet
    out = []
    data: list[bytes] | None = None
    event, last_id = b"", ""
    for line in lines:
        if not line:
            if data is not None:
                joined = b"\n".join(data)
                name = event.decode("utf-8", "replace") or "message"
                out.append((name, len(joined), joined[:PREVIEW], last_id))
            data, event = None, b""
            continue
        if line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data = [*(data or []), value]
        elif name in (b"event", b"id"):
            # The reader keeps a line's first PREVIEW + 16 bytes and 256 bytes of a name or an
            # id: a longer one is cut, never held whole (its documented bound).
            _, _, kept = line[: PREVIEW + 16].partition(b":")
            kept = (kept[1:] if kept.startswith(b" ") else kept)[:256]
            if name == b"event":
                event = kept
            elif b"\x00" not in kept:
                last_id = kept.decode("utf-8", "replace")
    return out


def read(stream: bytes, cuts: list[int]) -> list[tuple[str, int, bytes, str]]:
    reader = SseReader(PREVIEW)
    out = []
    bounds = [0, *sorted(c for c in set(cuts) if c <= len(stream)), len(stream)]
    for a, b in itertools.pairwise(bounds):
        out += reader.feed(stream[a:b], 1.0)
    return [(m.event, m.size, m.preview, m.id) for m in out]


ends = st.sampled_from([b"\n", b"\r", b"\r\n"])
values = st.one_of(
    st.sampled_from([b"", b" ", b"hello", b' {"a": 1}', b"x" * 300, "é".encode()]),
    st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
)
fields = st.sampled_from([b"data", b"event", b"id", b"retry", b"", b"dat", b"data "])


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    out = bytearray(draw(st.sampled_from([b"", b"\xef\xbb\xbf"])))
    for _ in range(draw(st.integers(0, 12))):
        what = draw(st.integers(0, 5))
        if what == 0:
            out += draw(ends)  # an empty line: dispatch
        elif what == 1:
            out += b":" + draw(values) + draw(ends)  # a comment
        else:
            name = draw(fields)
            colon = draw(st.sampled_from([b":", b": ", b""]))
            out += name + colon + draw(values) + draw(ends)
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(streams(), st.lists(st.integers(0, 2000), max_size=10))
def test_events_split_anywhere_read_as_the_rules_say(stream, cuts):
    assert read(stream, cuts) == reference(stream)


def test_every_boundary_of_a_known_stream():
    stream = (
        b"\xef\xbb\xbf: comment\r\nretry: 10\r\n\r\nevent: add\ndata: one\ndata:two\rid: 7\r\n\r\n"
        b"data\n\ndata: x\r\n\rid: 8\x009\n" + b"data: " + b"y" * 1000 + b"\n\n"
    )
    want = reference(stream)
    assert [(e, s, i) for e, s, _, i in want] == [
        ("add", 7, "7"),
        ("message", 0, "7"),
        ("message", 1, "7"),
        ("message", 1000, "7"),
    ]
    assert want[0][2] == b"one\ntwo" and want[3][2] == b"y" * PREVIEW
    for cut in range(len(stream) + 1):
        assert read(stream, [cut]) == want
    assert read(stream, list(range(len(stream)))) == want


def test_an_endless_line_costs_no_memory():
    reader = SseReader(PREVIEW)
    reader.feed(b"data: ", 1.0)
    for _ in range(200):  # 12.5 MiB of one line
        assert reader.feed(b"z" * 65536, 1.0) == []
    assert len(reader._line) <= PREVIEW + 16
    [event] = reader.feed(b"\n\n", 2.0)
    assert event.size == 200 * 65536 and event.preview == b"z" * PREVIEW


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=8))
def test_random_bytes_never_raise(stream, cuts):
    for _, size, preview, _ in read(stream, cuts):
        assert len(preview) <= PREVIEW <= PREVIEW + size


def _chunked(payload: bytes, size: int) -> bytes:
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)]
    return b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\nX-T: 1\r\n\r\n"


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=500), st.integers(1, 64), st.lists(st.integers(0, 2000)))
def test_dechunking_split_anywhere(payload, size, cuts):
    wire = _chunked(payload, size)
    d = Dechunker()
    bounds = [0, *sorted(c for c in set(cuts) if c <= len(wire)), len(wire)]
    out = b"".join(d.feed(wire[a:b]) for a, b in itertools.pairwise(bounds))
    assert out == payload and d.done and not d.broken


def test_dechunking_gives_up_on_what_it_cannot_read():
    d = Dechunker()
    assert d.feed(b"zz\r\nabc") == b"" and d.broken
    endless = Dechunker()
    endless.feed(b"1" * 5000)
    assert endless.broken
