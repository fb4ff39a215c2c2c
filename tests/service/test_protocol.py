"""The control channel's framing and forms, sans-I/O: round trips and hostile input."""

from __future__ import annotations

import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.agent import AgentSettings
from relay.events import Capture, Reconnecting, RequestRecord, TunnelOpen
from relay.host import HostUpdate, TunnelStatus
from relay.stats import TunnelStats
from tui.service.feed import feed_messages
from tui.service.forms import FormError, pack, unpack, unpack_update
from tui.service.protocol import Decoder, ProtocolError, encode


def _record(n: int, body: bytes = b"") -> RequestRecord:
    capture = Capture(b"POST /x HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n", body)
    return RequestRecord(
        1000.0 + n, "POST", f"/x/{n}", 200, 1.5, 10, 20, "1.2.3.4", n, capture=capture
    )


def _status(key: str) -> TunnelStatus:
    stats = TunnelStats()
    stats.add(_record(1))
    return TunnelStatus(
        key,
        "online",
        key,
        f"http://{key}.localhost",
        "127.0.0.1:3000",
        "",
        1.0,
        0,
        stats.snapshot(),
    )


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def test_messages_round_trip_split_at_every_byte():
    stream = encode({"op": "start", "id": 1}) + encode({"op": "stop", "key": "web", "id": 2})
    for cut in range(len(stream) + 1):
        decoder = Decoder()
        got = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert got == [{"op": "start", "id": 1}, {"op": "stop", "key": "web", "id": 2}], cut
        assert decoder.at_boundary()


def test_one_byte_at_a_time():
    stream = encode({"op": "hello", "subscribe": True}) * 3
    decoder = Decoder()
    got = [m for i in range(len(stream)) for m in decoder.feed(stream[i : i + 1])]
    assert got == [{"op": "hello", "subscribe": True}] * 3


def test_truncated_message_is_held_not_delivered():
    whole = encode({"op": "status", "id": 7})
    decoder = Decoder()
    assert decoder.feed(whole[:-1]) == []
    assert not decoder.at_boundary()
    assert decoder.feed(whole[-1:]) == [{"op": "status", "id": 7}]


def test_oversized_length_refused_before_the_body_arrives():
    decoder = Decoder(max_message=1000)
    with pytest.raises(ProtocolError, match="1001 bytes announced; the limit is 1000"):
        decoder.feed(struct.pack(">I", 1001))
    # (raised on the 4 header bytes alone: no body was waited for or buffered)


def test_huge_length_from_garbage_header():
    with pytest.raises(ProtocolError, match="limit"):
        Decoder().feed(b"\xff\xff\xff\xffrest")


def test_zero_length_is_an_error():
    with pytest.raises(ProtocolError, match="empty"):
        Decoder().feed(b"\x00\x00\x00\x00")


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"\xc1", "not a msgpack"),  # 0xc1 is never used in msgpack
        (b"\x92\x01", "not a msgpack"),  # an array of 2 with 1 element
        (msgpack.packb([1, 2]), "expected a map"),
        (msgpack.packb("op"), "expected a map"),
        (msgpack.packb({1: "x"}), "not a msgpack"),  # integer keys
        (msgpack.packb({"a": 1}) + msgpack.packb({"b": 2}), "not a msgpack"),  # two in one
        (msgpack.packb({"a": msgpack.ExtType(5, b"x")}), "extension type 5"),
    ],
)
def test_garbage_payloads(payload, why):
    with pytest.raises(ProtocolError, match=why):
        Decoder().feed(_frame(payload))


def test_encode_refuses_what_the_peer_would_refuse():
    with pytest.raises(ValueError, match="over the 100-byte limit"):
        encode({"blob": b"x" * 200}, max_message=100)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_ever_raise_protocol_error(data):
    decoder = Decoder(max_message=256)
    try:
        for message in decoder.feed(data):
            assert isinstance(message, dict)
    except ProtocolError:
        pass


def test_host_update_round_trip_through_the_channel():
    update = HostUpdate(
        {"web": [_record(1, b"body"), _record(2)]},
        [
            ("web", TunnelOpen("web", "http://web.localhost", "127.0.0.1:3000")),
            ("web", Reconnecting("web", "lost", 1, 0.5)),
        ],
        {"web": _status("web")},
    )
    ((message, count),) = feed_messages(update, body_share=1024)
    assert count == 2
    (decoded,) = Decoder().feed(message)
    got = unpack_update(decoded["feed"])
    assert got.records == update.records
    assert got.events == update.events
    assert got.statuses == update.statuses


def test_big_batch_is_split_under_the_limit_and_loses_nothing():
    records = [_record(n, b"b" * 3000) for n in range(40)]
    update = HostUpdate({"web": records[:25], "api": records[25:]}, [], {"web": _status("web")})
    parts = feed_messages(update, body_share=4096, max_message=20_000)
    assert len(parts) > 1
    assert all(len(p) <= 20_004 for p, _ in parts)
    assert sum(n for _, n in parts) == 40
    got = [unpack_update(m["feed"]) for p, _ in parts for m in Decoder(20_000).feed(p)]
    assert got[0].statuses == update.statuses
    assert [r for u in got for r in u.records.get("web", [])] == records[:25]
    assert [r for u in got for r in u.records.get("api", [])] == records[25:]


def test_feed_trims_bodies_to_the_logs_share():
    update = HostUpdate({"web": [_record(1, b"x" * 5000)]}, [], {})
    ((message, _),) = feed_messages(update, body_share=100)
    record = unpack_update(Decoder().feed(message)[0]["feed"]).records["web"][0]
    assert record.capture.request_body == b"x" * 100
    assert record.capture.request_truncated


def test_agent_settings_travel():
    settings = AgentSettings(3000, name="web", allow=("10.0.0.0/8",), protocol="tcp")
    assert unpack(msgpack.unpackb(msgpack.packb(pack(settings)), use_list=False)) == settings
    assert "resolver" not in pack(settings)  # a function stays in its process


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ({"~": "Popen", "args": "rm"}, "unknown form 'Popen'"),
        ({"~": 5}, "unknown form 5"),
        ({"~": "TunnelOpen", "name": "a", "url": "b", "local": "c", "evil": 1}, "no field"),
        ({"~": "TunnelOpen", "name": "a"}, "TunnelOpen: "),  # missing fields
        ({"~": "AgentSettings", "local_port": 1, "resolver": "os.system"}, "no field"),
    ],
)
def test_hostile_forms(value, why):
    with pytest.raises(FormError, match=why):
        unpack(value)


def test_deep_nesting_refused():
    value: object = 1
    for _ in range(50):
        value = {"a": value}
    with pytest.raises(FormError, match="deeply"):
        unpack(value)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"records": {"web": [1, 2]}},
        {"statuses": {"web": "online"}},
        {"events": [["web"]]},
        {"records": {"web": ({"~": "TunnelOpen", "name": "a", "url": "b", "local": "c"},)}},
    ],
)
def test_feed_batches_of_the_wrong_shape(body):
    packed = msgpack.unpackb(msgpack.packb(body), use_list=False)
    with pytest.raises(FormError):
        unpack_update(packed)


def test_unknown_dataclass_does_not_travel():
    from dataclasses import dataclass

    @dataclass
    class Secret:
        key: str

    with pytest.raises(TypeError, match="does not travel"):
        pack(Secret("x"))
