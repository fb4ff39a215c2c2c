"""The wire protocol without a network: every frame round-trips, and any other bytes are refused
with ProtocolError (never another exception), whatever shape they take, in time and memory bounded
by the message's size whatever lengths its bytes claim."""

from __future__ import annotations

import ast
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from relay.wire import codec as p
from relay.wire import decoding
from relay.wire.codec import FrameDecoder, ProtocolError, batch, decode_all, encode, encode_message

PROTOCOL_SOURCE = Path(p.__file__)

HELLOS: list[p.Hello] = [
    p.Hello(p.VERSION, "app", "secret-token", "resume-me", p.DEFAULT_WINDOW),
    p.Hello(p.VERSION, "", "", "", 1024),
    p.Hello(
        p.VERSION,
        "app",
        "t",
        "",
        1024,
        {"basic_auth": "u:p", "allow": ["10.0.0.0/8", "::1/128"], "deny": [], "takeover": True},
    ),
    p.Hello(p.VERSION, "app", "t", "", 1024, {"allow": ["10.0.0.0/8"] * p.MAX_OPTION_ITEMS}),
]
# Every frame but HELLO, which travels alone in its message.
BATCHABLE: list[p.Frame] = [
    p.Welcome("app", "http://app.localhost:8080", "resume-me", 120.0, 5.0, p.DEFAULT_WINDOW),
    p.Error("name_taken", "the name 'app' is in use"),
    p.Open(1, "203.0.113.9", 54321),
    p.Open(p.MAX_STREAM_ID, "::1", 0),
    p.Data(7, b"GET / HTTP/1.1\r\n\r\n"),
    p.Data(7, b""),
    p.Data(8, bytes(range(256)) * 100),
    p.End(3),
    p.Reset(4, "closed", "socket closed"),
    p.Credit(5, 1),
    p.Credit(5, p.MAX_WINDOW),
    p.Ping(0),
    p.Ping(2**63),
    p.Pong(123456789),
    p.GoAway("relay shutting down"),
    p.Error("x" * p.MAX_TEXT, "é" * p.MAX_TEXT),
]
EVERY_FRAME: list[p.Frame] = [*HELLOS, *BATCHABLE]
SESSION_TYPES = {p.HELLO, p.WELCOME, p.ERROR, p.PING, p.PONG, p.GOAWAY}
FIELD_KINDS: dict[int, tuple[str, ...]] = {
    p.HELLO: ("int", "str", "str", "str", "int", "map"),
    p.WELCOME: ("str", "str", "str", "num", "num", "int"),
    p.ERROR: ("str", "str"),
    p.OPEN: ("str", "int"),
    p.DATA: ("bytes",),
    p.END: (),
    p.RESET: ("str", "str"),
    p.CREDIT: ("int",),
    p.PING: ("int",),
    p.PONG: ("int",),
    p.GOAWAY: ("str",),
}


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def well_formed(item: Any) -> bool:
    """An independent reading of the protocol's rules: is ``item`` one valid frame?"""
    if type(item) is not list or len(item) < 2:
        return False
    kind, stream, *fields = item
    if type(kind) is not int or kind not in FIELD_KINDS or type(stream) is not int:
        return False
    if kind in SESSION_TYPES:
        if stream != 0:
            return False
    elif not 1 <= stream <= p.MAX_STREAM_ID:
        return False
    kinds = FIELD_KINDS[kind]
    if kind == p.HELLO and len(fields) == len(kinds) - 1:
        fields = [*fields, {}]  # 0.1.0 agents sent no options
    if len(fields) != len(kinds):
        return False
    for value, want in zip(fields, kinds, strict=True):
        if want == "str" and not (type(value) is str and len(value) <= p.MAX_TEXT):
            return False
        if want == "bytes" and type(value) is not bytes:
            return False
        if want == "num" and type(value) not in (int, float):
            return False
        if want == "int" and not (type(value) is int and 0 <= value <= 2**63):
            return False
        if want == "map" and not options_well_formed(value):
            return False
    return not (kind == p.CREDIT and not 1 <= fields[0] <= p.MAX_WINDOW)


def scalar(value: Any) -> bool:
    """A msgpack value with no array or map in it, and no text longer than MAX_TEXT."""
    if type(value) is str:
        return len(value) <= p.MAX_TEXT
    return value is None or type(value) in (bool, int, float, bytes)


def options_well_formed(value: Any) -> bool:
    """HELLO options: a small map with text keys; each value a scalar or a list of scalars."""
    return (
        type(value) is dict
        and len(value) <= p.MAX_OPTIONS
        and all(type(k) is str and scalar(k) for k in value)
        and all(
            scalar(v) or (type(v) is list and len(v) <= p.MAX_OPTION_ITEMS and all(map(scalar, v)))
            for v in value.values()
        )
    )


def message_well_formed(items: list[Any]) -> bool:
    """The rules for a whole message: 1..MAX_FRAMES frames, and a HELLO travels alone."""
    return (
        1 <= len(items) <= p.MAX_FRAMES
        and all(well_formed(v) for v in items)
        and (len(items) == 1 or all(v[0] != p.HELLO for v in items))
    )


# -- round trips ----------------------------------------------------------------------------------


def message(*items: Any) -> bytes:
    """A websocket message holding ``items`` (raw msgpack values, not necessarily frames)."""
    return pack(list(items))


@pytest.mark.parametrize("frame", EVERY_FRAME, ids=lambda f: type(f).__name__)
def test_every_frame_type_round_trips(frame):
    assert decode_all(encode_message(frame)) == [frame]
    assert decode_all(batch([encode(frame)])) == [frame]


def test_every_frame_type_is_covered():
    assert {type(f).TYPE for f in EVERY_FRAME} == set(FIELD_KINDS)


def test_several_frames_share_one_message():
    assert decode_all(encode_message(*BATCHABLE)) == BATCHABLE
    assert decode_all(batch([encode(f) for f in BATCHABLE])) == BATCHABLE


@pytest.mark.parametrize("hello", HELLOS, ids=range(len(HELLOS)))
def test_a_hello_travels_alone(hello):
    assert decode_all(encode_message(hello)) == [hello]
    for others in ([hello], [p.Ping(1)], [p.Data(1, b"x"), p.End(1)]):
        with pytest.raises(ProtocolError, match="alone"):
            decode_all(encode_message(hello, *others))
        with pytest.raises(ProtocolError, match="alone"):
            decode_all(encode_message(*others, hello))


@pytest.mark.parametrize("count", [1, 15, 16, 17, 0xFFFF, 0x10000, 0x10001])
def test_batches_of_every_size_are_one_msgpack_array(count):
    # 15/16 and 0xFFFF/0x10000 are where msgpack's array header changes form.
    frames = [p.Credit(i % 1000 + 1, i + 1) for i in range(count)]
    encoded = batch([encode(f) for f in frames])
    assert msgpack.unpackb(encoded, raw=False) == [[p.CREDIT, f.stream, f.amount] for f in frames]
    if count < 100:
        assert decode_all(encoded) == frames


def test_a_batch_with_a_32_bit_header_decodes():
    # Our encoder never writes one this small, but msgpack allows it: a peer's may.
    frames = [p.End(i % 7 + 1) for i in range(p.MAX_FRAMES)]
    encoded = b"\xdd" + p.MAX_FRAMES.to_bytes(4, "big") + b"".join(map(encode, frames))
    assert decode_all(encoded) == frames


def test_one_decoder_decodes_many_messages():
    decoder = FrameDecoder()
    for frame in EVERY_FRAME:
        assert decoder.decode(encode_message(frame)) == [frame]


def test_hot_path_encoders_equal_the_general_encoder():
    assert p.encode_data(9, b"abc") == encode(p.Data(9, b"abc"))
    assert p.encode_data(p.MAX_STREAM_ID, b"") == encode(p.Data(p.MAX_STREAM_ID, b""))
    assert p.encode_credit(9, 4096) == encode(p.Credit(9, 4096))
    assert p.encode_credit(1, p.MAX_WINDOW) == encode(p.Credit(1, p.MAX_WINDOW))


def test_data_is_carried_raw_not_base64():
    payload = b"\x00\xff" * 1000
    encoded = encode_message(p.Data(1, payload))
    assert payload in encoded
    assert len(encoded) < len(payload) + 16


def test_welcome_accepts_integer_seconds():
    (frame,) = decode_all(message([p.WELCOME, 0, "a", "u", "r", 120, 5, 1024]))
    assert frame == p.Welcome("a", "u", "r", 120.0, 5.0, 1024)
    assert type(frame.lease) is float and type(frame.ping_interval) is float


@given(
    stream=st.integers(1, p.MAX_STREAM_ID),
    data=st.binary(max_size=2048),
    text=st.text(max_size=64),
    number=st.integers(0, 2**63),
    amount=st.integers(1, p.MAX_WINDOW),
    seconds=st.floats(allow_nan=False, allow_infinity=False),
)
def test_random_valid_frames_round_trip(stream, data, text, number, amount, seconds):
    hello = p.Hello(number, text, text, text, number, {text: [text, number], "x": seconds})
    assert decode_all(encode_message(hello)) == [hello]
    frames = [
        p.Welcome(text, text, text, seconds, seconds, number),
        p.Error(text, text),
        p.Open(stream, text, number),
        p.Data(stream, data),
        p.End(stream),
        p.Reset(stream, text, text),
        p.Credit(stream, amount),
        p.Ping(number),
        p.Pong(number),
        p.GoAway(text),
    ]
    assert decode_all(encode_message(*frames)) == frames


# -- sans-I/O -------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["codec.py", "frames.py", "decoding.py"])
def test_protocol_module_imports_no_io(module):
    tree = ast.parse((PROTOCOL_SOURCE.parent / module).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import in {module}"
            imported.add(node.module or "")
    forbidden = {"asyncio", "socket", "websockets", "selectors", "ssl", "uvloop", "threading"}
    assert not {name.split(".")[0] for name in imported} & forbidden, imported
    allowed = {"__future__", "dataclasses", "typing", "msgpack", "struct"}
    assert imported <= allowed | {"relay.wire.frames", "relay.wire.decoding"}, imported


# -- refusing everything else ---------------------------------------------------------------------


def test_empty_message_is_an_error():
    with pytest.raises(ProtocolError):
        decode_all(b"")


def test_empty_batch_is_an_error():
    with pytest.raises(ProtocolError):
        decode_all(batch([]))


def test_a_bare_frame_is_not_a_message():
    # A frame must travel inside the message's array.
    with pytest.raises(ProtocolError):
        decode_all(encode(p.Data(1, b"x")))
    with pytest.raises(ProtocolError):
        decode_all(encode(p.Ping(5)))


@pytest.mark.parametrize("frame", EVERY_FRAME, ids=lambda f: type(f).__name__)
def test_message_cut_inside_a_frame_is_an_error(frame):
    whole = encode_message(p.Ping(1), frame)
    for cut in range(1, len(whole)):
        with pytest.raises(ProtocolError):
            FrameDecoder().decode(whole[:cut])


def test_a_frame_never_spans_two_messages():
    whole = encode_message(p.Data(1, b"x" * 100))
    decoder = FrameDecoder()
    for cut in (1, 2, 3, 50):
        with pytest.raises(ProtocolError):
            decoder.decode(whole[:cut])
        with pytest.raises(ProtocolError):
            decoder.decode(whole[cut:])
    assert decoder.decode(whole) == [p.Data(1, b"x" * 100)]


def test_bytes_after_the_message_array_are_an_error():
    whole = encode_message(p.Ping(1))
    for extra in (b"\x00", encode(p.Ping(2)), encode_message(p.Ping(2))):
        with pytest.raises(ProtocolError):
            decode_all(whole + extra)


def test_message_larger_than_the_limit_is_an_error():
    decoder = FrameDecoder(max_message=1024)
    with pytest.raises(ProtocolError):
        decoder.decode(encode_message(p.Data(1, b"x" * 4096)))
    assert decoder.decode(encode_message(p.Data(1, b"x" * 900))) == [p.Data(1, b"x" * 900)]


@pytest.mark.parametrize(
    "item",
    [
        # not a frame at all
        None,
        7,
        "hello",
        b"bytes",
        {"type": 1},
        [],
        [p.DATA],
        # bad type or stream numbers
        [0, 1, b"x"],
        [12, 1, b"x"],
        [-1, 1, b"x"],
        [1.0, 0, 1, "", "", "", 1024],
        [p.DATA, "1", b"x"],
        [p.DATA, 1.0, b"x"],
        [p.DATA, True, b"x"],
        # stream frames need a stream id 1..2**31-1
        [p.DATA, 0, b"x"],
        [p.END, 0],
        [p.CREDIT, 0, 10],
        [p.OPEN, 0, "1.2.3.4", 5],
        [p.RESET, 0, "closed", ""],
        [p.DATA, -1, b"x"],
        [p.DATA, p.MAX_STREAM_ID + 1, b"x"],
        [p.END, 2**40],
        # session frames need stream 0
        [p.PING, 1, 5],
        [p.PONG, 3, 5],
        [p.HELLO, 1, p.VERSION, "", "", "", 1024],
        [p.WELCOME, 1, "a", "u", "r", 1.0, 1.0, 1024],
        [p.ERROR, 2, "code", "message"],
        [p.GOAWAY, 9, "bye"],
        # wrong field counts
        [p.DATA, 1],
        [p.DATA, 1, b"x", b"y"],
        [p.END, 1, b""],
        [p.PING, 0],
        [p.PING, 0, 1, 2],
        [p.HELLO, 0, p.VERSION, "", "", ""],
        [p.CREDIT, 1],
        # wrong field types
        [p.DATA, 1, "text is not bytes"],
        [p.DATA, 1, None],
        [p.DATA, 1, [1, 2]],
        [p.HELLO, 0, "1", "", "", "", 1024],
        [p.HELLO, 0, p.VERSION, b"app", "", "", 1024],
        [p.HELLO, 0, p.VERSION, "", "", "", 1024.0],
        [p.HELLO, 0, p.VERSION, "", "", "", True],
        [p.WELCOME, 0, "a", "u", "r", "120", 5.0, 1024],
        [p.WELCOME, 0, "a", "u", "r", 120.0, None, 1024],
        [p.WELCOME, 0, "a", "u", "r", True, 5.0, 1024],
        [p.OPEN, 1, "1.2.3.4", "80"],
        [p.OPEN, 1, b"1.2.3.4", 80],
        [p.RESET, 1, 5, ""],
        [p.CREDIT, 1, 1.5],
        [p.CREDIT, 1, "10"],
        [p.PING, 0, -1],
        [p.PING, 0, 2**64 - 1],
        [p.PING, 0, 1.0],
        [p.PONG, 0, b"1"],
        [p.GOAWAY, 0, None],
        # credit out of range
        [p.CREDIT, 1, 0],
        [p.CREDIT, 1, p.MAX_WINDOW + 1],
        [p.CREDIT, 1, -5],
        # text too long
        [p.ERROR, 0, "x" * (p.MAX_TEXT + 1), ""],
        [p.GOAWAY, 0, "é" * (p.MAX_TEXT + 1)],
        [p.RESET, 1, "closed", "m" * (p.MAX_TEXT + 1)],
        [p.HELLO, 0, p.VERSION, "n" * (p.MAX_TEXT + 1), "", "", 1024],
    ],
    ids=repr,
)
def test_wrong_frames_are_protocol_errors(item):
    assert not well_formed(item)
    with pytest.raises(ProtocolError):
        decode_all(message(item))
    # ... also between good frames in the same message
    with pytest.raises(ProtocolError):
        decode_all(message([p.PING, 0, 1], item, [p.END, 1]))


@pytest.mark.parametrize(
    "raw",
    [
        b"\xc1",  # never used in msgpack
        b"\x91\xc1",  # ... inside an array
        b"\x92\x01",  # array of 2 with one element
        b"\x81",  # map of 1 with nothing
        b"\x91\xc4\x10abc",  # bin 16 bytes, 3 present
        b"\xdd\xff\xff\xff\xff",  # array of 4G elements
        b"\x91\xa3\xff\xfe\xfd",  # str with invalid utf-8
        b"\x91\x93\x05\x01\xd4\x01\x00",  # DATA carrying an ext value
        b"\x91\x81\x01\x02",  # map with an integer key
        b"\x91\xd6\xff\x00\x00\x00\x01",  # a msgpack timestamp
    ],
)
def test_undecodable_bytes_are_protocol_errors(raw):
    with pytest.raises(ProtocolError):
        decode_all(raw)


# -- limits: what a message claims costs nothing until its bytes are there ------------------------
#
# Each hostile shape is refused within TIME_BOUND seconds and TRACED_PEAK bytes of allocations
# (tracemalloc, the message itself excluded), however large it claims to be or is: msgpack's own
# limits bound each array and string, not how many a message holds, so these are the codec's.

TIME_BOUND = 0.25  # seconds; the refusals below take microseconds, but the machine is shared
TRACED_PEAK = 2 * 1024 * 1024
MIB = 1024 * 1024


def bounded(fn: Callable[[], object]) -> tuple[float, int]:
    """Run ``fn``; return (CPU seconds, peak bytes traced by tracemalloc while it ran).

    CPU time of this thread, not wall time: the bound is there to catch quadratic work, and
    other processes on a busy machine (a CI runner, parallel test runs) must not fail it.
    """
    tracemalloc.start()
    try:
        started = time.thread_time()
        fn()
        elapsed = time.thread_time() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return elapsed, peak


def refused_cheaply(message: bytes, match: str | None = None, **limits: int) -> ProtocolError:
    decoder = FrameDecoder()
    caught: list[ProtocolError] = []

    def decode() -> None:
        with pytest.raises(ProtocolError, match=match) as info:
            decoder.decode(message, **limits)
        caught.append(info.value)

    elapsed, peak = bounded(decode)
    assert elapsed < TIME_BOUND, f"{elapsed:.3f}s to refuse {len(message)} bytes"
    assert peak < TRACED_PEAK, f"{peak / MIB:.1f} MiB allocated to refuse {len(message)} bytes"
    return caught[0]


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


HUGE = 2**24  # what the attacker's message header claimed: 16M elements
PINGS = b"\x93\x09\x00\x01"  # [PING, 0, 1]
# A HELLO of eight values up to its options: [HELLO, 0, VERSION, "", "", "", 1024, ...
HELLO_HEAD = b"\x98" + pack(p.HELLO) + b"\x00" + pack(p.VERSION) + b"\xa0\xa0\xa0" + pack(1024)


def test_hello_head_helper_is_a_hello_up_to_its_options():
    assert decode_all(b"\x91" + HELLO_HEAD + pack({})) == [p.Hello(p.VERSION, "", "", "", 1024)]


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        # the outer array: the header alone, with no body, and with a body too short for it
        pytest.param(b"\xdd" + u32(HUGE), "frames in one message", id="array-16M-no-body"),
        pytest.param(b"\xdd" + u32(2**32 - 1), "frames", id="array-4G-no-body"),
        pytest.param(b"\xdc\xff\xff" + PINGS, "frames", id="array-64K-one-frame"),
        pytest.param(b"\xdc\x0f\xff" + PINGS * 10, "cannot hold", id="array-4095-ten-frames"),
        pytest.param(b"\xdf" + u32(HUGE), "array of frames", id="map-16M-no-body"),
        pytest.param(b"\xdb" + u32(2**31), "array of frames", id="str-2G-no-body"),
        pytest.param(b"\xc6" + u32(2**31), "array of frames", id="bin-2G-no-body"),
        # one frame
        pytest.param(b"\x91\xdd" + u32(HUGE) + b"\x00" * 8, "fields", id="frame-16M-fields"),
        pytest.param(b"\x91\x99" + b"\x00" * 9, "fields", id="frame-9-fields"),
        pytest.param(b"\x91\x93\x05\x01\xc6" + u32(2**31), "bytes", id="data-bin-2G"),
        pytest.param(
            b"\x91\x93\x05\x01\xc6" + u32(2**31 - 1) + b"x" * 100, "bytes", id="data-bin-2G-b"
        ),
        pytest.param(b"\x91\x94\x03\x00\xdb" + u32(2**31) + b"\xa0", None, id="error-str-2G"),
        pytest.param(b"\x91\x93\x03\x00\xda\x80\x00" + b"x" * 40000, "longer", id="str-32K"),
        pytest.param(b"\x91\x93\x0b\x00\xc9" + u32(2**31) + b"\x01", "type", id="ext-2G"),
        pytest.param(b"\x91\x93\x09\x00\xdf" + u32(HUGE), "flat", id="map-in-a-ping"),
        pytest.param(b"\x91\x93\x05\x01\xdd" + u32(HUGE), "flat", id="array-in-a-data"),
        # nesting: frames are flat
        pytest.param(b"\x91" * 100_000, "array", id="nested-100k-deep"),
        pytest.param(b"\x91\x93\x05\x01" + b"\x91" * 100_000, "flat", id="nested-in-data"),
        pytest.param(b"\x91\x92" + b"\x91" * 100_000, "flat", id="nested-frame-type"),
        # HELLO options: a small map of scalars and short lists of scalars
        pytest.param(b"\x91" + HELLO_HEAD + b"\xdf" + u32(HUGE), "small map", id="options-16M"),
        pytest.param(b"\x91" + HELLO_HEAD + b"\xde\x00\x21", "small map", id="options-33"),
        pytest.param(
            b"\x91" + HELLO_HEAD + b"\x81\xa1a\xdd" + u32(HUGE), "items", id="option-list-16M"
        ),
        pytest.param(
            b"\x91"
            + HELLO_HEAD
            + b"\x81\xa1a\xdc"
            + (p.MAX_OPTION_ITEMS + 1).to_bytes(2, "big")
            + b"\xa0" * (p.MAX_OPTION_ITEMS + 1),
            "items",
            id="option-list-too-long",
        ),
        pytest.param(
            b"\x91" + HELLO_HEAD + b"\x81\xa1a\x91" * 1000, "flat", id="option-list-nested"
        ),
        pytest.param(b"\x91" + HELLO_HEAD + b"\x81\xa1a\x81\xa1a\xc0", "flat", id="option-map"),
        pytest.param(b"\x91" + HELLO_HEAD + b"\x81\x01\xc0", "text keys", id="option-key-int"),
        pytest.param(b"\x91" + HELLO_HEAD + b"\x81\x91\xa1a\xc0", "flat", id="option-key-list"),
        pytest.param(
            b"\x91" + HELLO_HEAD + b"\x81\xa1a\xdb" + u32(2**31), "longer", id="option-str-2G"
        ),
    ],
)
def test_claimed_sizes_are_refused_before_anything_is_allocated(raw, match):
    refused_cheaply(raw, match)


def test_the_16m_array_bomb_is_refused_at_its_header():
    # What the attacker sent: a header claiming 16M elements and 16 MiB of one-byte elements
    # after it. Unpacked whole, that was 16M lists: 1.2 GB and seconds of one core.
    bomb = b"\xdd" + u32(HUGE) + b"\x90" * (p.MAX_MESSAGE - 5)
    refused_cheaply(bomb, "frames in one message")


def test_nested_empty_arrays_within_msgpack_limits_are_refused_at_the_first_one():
    # 4096 arrays of 4000 empty arrays: no array is longer than 4096, so msgpack's limits
    # (max_array_len=4096) pass it, and it unpacks into 16M lists. Frames are flat arrays of at
    # most 8 values: the first frame header refuses it.
    bomb = b"\xdc\x10\x00" + (b"\xdc\x0f\xa0" + b"\x90" * 4000) * 4096
    assert 16 * 10**6 < len(bomb) <= p.MAX_MESSAGE
    refused_cheaply(bomb, "fields")
    narrow = b"\xdc\x10\x00" + (b"\x98" + b"\x98" + b"\x90" * 8 + b"\x90" * 7) * 4096
    refused_cheaply(narrow, "flat")


def test_a_million_pings_in_one_message_are_refused_by_the_frame_cap():
    flood = p.array_header(1_000_000) + PINGS * 1_000_000
    refused_cheaply(flood, "frames in one message")


def test_the_frame_cap():
    at_cap = p.array_header(p.MAX_FRAMES) + PINGS * p.MAX_FRAMES
    assert len(decode_all(at_cap)) == p.MAX_FRAMES
    refused_cheaply(p.array_header(p.MAX_FRAMES + 1) + PINGS * (p.MAX_FRAMES + 1), "frames")
    # A relay waiting for the HELLO lowers the cap to one frame: a batch is refused at once.
    refused_cheaply(p.array_header(2) + PINGS * 2, "frames in one message", max_frames=1)
    assert FrameDecoder().decode(encode_message(HELLOS[0]), max_frames=1) == [HELLOS[0]]


def test_a_message_at_the_size_cap_of_pings_is_refused_at_its_header():
    flood = p.array_header(p.MAX_MESSAGE // 4) + PINGS * (p.MAX_MESSAGE // 4 - 2)
    refused_cheaply(flood, "frames in one message")
    refused_cheaply(flood + PINGS * 2, "larger than")


@pytest.mark.parametrize(
    "items",
    [
        pytest.param([[p.PING, 0, 1]] * p.MAX_FRAMES, id="pings"),
        pytest.param([[p.CREDIT, 1, 1]] * p.MAX_FRAMES, id="credits"),
        pytest.param([[p.WELCOME, 0, "", "", "", 0, 0, 0]] * p.MAX_FRAMES, id="welcomes"),
        pytest.param([[p.RESET, 1, "", ""]] * p.MAX_FRAMES, id="resets"),
        pytest.param([[p.DATA, 1, b""]] * p.MAX_FRAMES, id="empty-data"),
    ],
)
def test_the_densest_messages_within_the_caps_stay_small(items):
    """Whatever a message holds, decoding it allocates a bounded amount per byte."""
    encoded = message(*items)
    elapsed, peak = bounded(lambda: decode_all(encoded))
    # A frame object per frame (up to ~100 bytes each) and the frames list: 4096 frames of at
    # least three bytes each may take ~0.5 MiB, never the 64 bytes per byte of nested arrays.
    assert peak < 1 * MIB, f"{peak / MIB:.2f} MiB for {len(encoded)} bytes"
    assert elapsed < 1.0


def test_the_largest_hello_options_stay_small():
    options = {f"k{i}": [f"{n}.0.0.0/8" for n in range(p.MAX_OPTION_ITEMS)] for i in range(32)}
    encoded = encode_message(p.Hello(p.VERSION, "app", "t", "", 1024, options))
    elapsed, peak = bounded(lambda: decode_all(encoded))
    assert peak < 4 * len(encoded) + 2 * MIB, f"{peak / MIB:.2f} MiB for {len(encoded)} bytes"
    assert elapsed < 1.0


def test_every_encoding_msgpack_allows_decodes_alike():
    """The reader accepts what msgpack would produce for the same values, in any width."""
    values = {
        "uint8": (b"\xcc\x07", 7),
        "uint16": (b"\xcd\x00\x07", 7),
        "uint32": (b"\xce\x00\x00\x00\x07", 7),
        "uint64": (b"\xcf" + (7).to_bytes(8, "big"), 7),
        "int8": (b"\xd0\x07", 7),
        "int16": (b"\xd1\x00\x07", 7),
        "int32": (b"\xd2\x00\x00\x00\x07", 7),
        "int64": (b"\xd3" + (7).to_bytes(8, "big"), 7),
    }
    for name, (raw, value) in values.items():
        assert msgpack.unpackb(raw) == value, name
        for frame in (
            b"\x93\x05" + raw + b"\xc4\x01x",  # the DATA stream id
            b"\x93\x08" + raw + raw,  # CREDIT
            b"\x93\x09\x00" + raw,  # PING
            b"\x92\x06" + raw,  # END
        ):
            assert decode_all(b"\x91" + frame) == msgpack_frames(b"\x91" + frame), (name, frame)
    for data in (b"\xc4\x01x", b"\xc5\x00\x01x", b"\xc6\x00\x00\x00\x01x"):
        for sid in (b"\x07", b"\xcc\xff", b"\xcd\xff\xff", b"\xce\x7f\xff\xff\xff"):
            raw = b"\x91\x93\x05" + sid + data
            assert decode_all(raw) == msgpack_frames(raw)
    floats = (
        b"\x91\x98\x02\x00\xa0\xa0\xa0\xca\x3f\x80\x00\x00\xcb" + pack(2.5)[1:] + b"\xcd\x04\x00"
    )
    assert decode_all(floats) == [p.Welcome("", "", "", 1.0, 2.5, 1024)]
    text = "é" * 40
    raw = b"\x91\x94\x07\x01\xd9" + bytes([len(text.encode())]) + text.encode() + b"\xa0"
    assert decode_all(raw) == [p.Reset(1, text, "")]
    raw = b"\x91\x94\x07\x01\xda\x00\x01x\xdb\x00\x00\x00\x01y"
    assert decode_all(raw) == [p.Reset(1, "x", "y")]


def msgpack_frames(raw: bytes) -> list[p.Frame]:
    """What the decoder of the previous release made of ``raw``: msgpack, then the schema."""
    return [decoding._build(item) for item in msgpack.unpackb(raw, raw=False)]


@pytest.mark.parametrize("stream", [0, p.MAX_STREAM_ID + 1, 2**32 - 1])
def test_the_data_fast_path_refuses_what_the_general_path_refuses(stream):
    for encoded in (pack([[p.DATA, stream, b"x"]]), pack([[p.CREDIT, stream, 1]])):
        with pytest.raises(ProtocolError, match="stream id"):
            decode_all(encoded)
    with pytest.raises(ProtocolError):
        decode_all(pack([[p.END, stream]]))
    with pytest.raises(ProtocolError, match="stream id must be 0"):
        decode_all(pack([[p.PING, 1, 5]]))


@pytest.mark.parametrize("cut", range(1, 15))
def test_a_data_header_cut_anywhere_is_an_error(cut):
    whole = b"\x91\x93\x05\xce\x00\x01\x00\x00\xc6\x00\x00\x00\x02xy"
    assert decode_all(whole) == [p.Data(65536, b"xy")]
    with pytest.raises(ProtocolError):
        decode_all(whole[:cut])


# -- hypothesis: nothing but frames or ProtocolError ----------------------------------------------

ints = st.integers(-(2**63), 2**64 - 1)  # what msgpack can carry
msgpack_values = st.recursive(
    st.none() | st.booleans() | ints | st.floats() | st.text(max_size=20) | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


def _decode_or_protocol_error(message: bytes) -> list[p.Frame] | None:
    try:
        return FrameDecoder().decode(message)
    except ProtocolError:
        return None


@settings(max_examples=300)
@given(st.binary(max_size=200) | st.binary(max_size=200).map(lambda b: b"\x91" + b))
def test_random_bytes_give_frames_or_protocol_error(data):
    frames = _decode_or_protocol_error(data)
    if frames is not None:
        assert frames
        assert decode_all(encode_message(*frames)) == frames


@settings(max_examples=300)
@given(st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=5))
def test_random_message_sequences_on_one_decoder(messages):
    decoder = FrameDecoder()
    for message in messages:
        try:
            decoder.decode(message)
        except ProtocolError:
            return


@settings(max_examples=200)
@given(msgpack_values)
def test_random_msgpack_values_are_protocol_errors(value):
    if not (type(value) is list and message_well_formed(value)):
        with pytest.raises(ProtocolError):
            decode_all(pack(value))  # not an array of frames
    assume(not well_formed(value))
    with pytest.raises(ProtocolError):
        decode_all(message(value))


def _field(kind: str) -> st.SearchStrategy[Any]:
    return {
        "str": st.text(max_size=10),
        "bytes": st.binary(max_size=10),
        "num": st.floats(allow_nan=False) | st.integers(0, 1000),
        "int": st.integers(0, 2**40),
        "map": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    }[kind]


def _wrong_field(kind: str) -> st.SearchStrategy[Any]:
    others = {
        "str": st.binary(max_size=5) | ints | st.none() | st.booleans(),
        "bytes": st.text(max_size=5) | ints | st.none() | st.lists(ints, max_size=3),
        "num": st.text(max_size=5) | st.none() | st.booleans() | st.binary(max_size=3),
        "int": st.integers(-(2**63), -1)
        | st.integers(2**63 + 1, 2**64 - 1)
        | st.floats()
        | st.text(max_size=5)
        | st.booleans(),
        "map": st.text(max_size=5) | ints | st.none() | st.lists(ints, max_size=3),
    }
    return others[kind]


@st.composite
def nearly_frames(draw: st.DrawFn) -> list[Any]:
    """A list with a valid type number whose stream id, fields or field count is wrong."""
    kind = draw(st.sampled_from(sorted(FIELD_KINDS)))
    kinds = FIELD_KINDS[kind]
    stream = 0 if kind in SESSION_TYPES else draw(st.integers(1, p.MAX_STREAM_ID))
    fields = [draw(_field(k)) for k in kinds]
    if kind == p.CREDIT:
        fields = [draw(st.integers(1, p.MAX_WINDOW))]
    flaw = draw(st.sampled_from(["stream", "type", "count", "credit", "text"]))
    if flaw == "stream":
        if kind in SESSION_TYPES:
            stream = draw(st.integers(1, 2**40) | st.integers(-(2**63), -1))
        else:
            stream = draw(
                st.just(0) | st.integers(-(2**63), -1) | st.integers(p.MAX_STREAM_ID + 1, 2**62)
            )
    elif flaw == "type" and kinds:
        i = draw(st.integers(0, len(kinds) - 1))
        fields[i] = draw(_wrong_field(kinds[i]))
    elif flaw == "count" or not kinds:
        extra = draw(st.lists(msgpack_values, min_size=1, max_size=3))
        fields = fields + extra if draw(st.booleans()) or not fields else fields[:-1]
    elif flaw == "credit" and kind == p.CREDIT:
        fields = [draw(st.just(0) | st.integers(p.MAX_WINDOW + 1, 2**63))]
    elif "str" in kinds:
        i = kinds.index("str")
        fields[i] = draw(st.text(min_size=p.MAX_TEXT + 1, max_size=p.MAX_TEXT + 3))
    else:
        stream = -1
    item = [kind, stream, *fields]
    # A HELLO one field short is the 0.1.0 form, which stays valid: draw another flaw.
    assume(not well_formed(item))
    return item


@settings(max_examples=250)
@given(nearly_frames())
def test_nearly_valid_frames_are_protocol_errors(item):
    assert not well_formed(item)
    with pytest.raises(ProtocolError):
        decode_all(message(item))


@settings(max_examples=150)
@given(st.lists(msgpack_values | nearly_frames(), min_size=1, max_size=4))
def test_decode_agrees_with_the_rules(items):
    """Decoding a message succeeds exactly when every value in it is a well-formed frame."""
    frames = _decode_or_protocol_error(message(*items))
    if message_well_formed(items):
        assert frames is not None
        assert [type(f).TYPE for f in frames] == [v[0] for v in items]
    else:
        assert frames is None
