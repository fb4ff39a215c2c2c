"""Open connections' messages on the capture pipe: MESSAGES frames, hostile ones, a real writer."""

from __future__ import annotations

import contextlib
import random
import sqlite3

import msgpack
import pytest

from inspector import CaptureSettings
from inspector import pipe_codec as pc
from inspector import pipe_records as pr
from inspector.message_frames import decode_update, update_frame
from inspector.message_rows import MessageUpdate
from relay.http.stream_message import StreamMessage
from tests.inspector.records import exchange, store_process
from tests.inspector.test_capture_pipe import _answers
from tests.inspector.test_pipe_records import _row, flat


def _update(exchange_id: int = 1, **overrides: object) -> MessageUpdate:
    messages = [
        StreamMessage(1.5, "in", "text", 5, b"hello"),
        StreamMessage(2.5, "out", "binary", 70_000, b"\x00\xff", compressed=True),
        StreamMessage(3.5, "out", "event", 3, b"abc", event="tick", id="7"),
    ]
    fields = dict(
        exchange_id=exchange_id,
        protocol="websocket",
        first_seq=0,
        messages=messages,
        dropped=2,
        note="",
        closed=False,
    )
    fields.update(overrides)
    return MessageUpdate(**fields)  # type: ignore[arg-type]


def _payload(update: MessageUpdate) -> bytes:
    (item,) = pc.FrameDecoder(1 << 20).feed(update_frame(update))
    assert item.kind == pc.MESSAGES
    return item.payload


def test_an_update_crosses_the_pipe_unchanged():
    update = _update(closed=True, note="a frame could not be read")
    assert decode_update(_payload(update)) == update


def _packed(body: object) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


GOOD_ROW = [1.0, "in", "text", 1, b"x", False, "", ""]


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b"", "not readable"),
        (b"\xc1", "not readable"),  # a byte msgpack never uses
        (_packed({"a": 1}), "not readable"),  # maps are not allowed at all
        (_packed([1, "websocket", 0, []]), "7-item"),
        (_packed([-1, "websocket", 0, [], 0, "", False]), "non-negative"),
        (_packed([1, "websocket", 0, [], 2**64 - 1, "", False]), "non-negative"),
        (_packed([1, "gopher", 0, [], 0, "", False]), "protocol"),
        (_packed([1, "sse", 0, [], 0, b"note", False]), "note"),
        (_packed([1, "sse", 0, "rows", 0, "", False]), "list"),
        (_packed([1, "sse", 0, [[1.0, "in"]], 0, "", False]), "8 fields"),
        (_packed([1, "sse", 0, [[*GOOD_ROW[:1], "up", *GOOD_ROW[2:]]], 0, "", False]), "direction"),
        (_packed([1, "sse", 0, [[float("nan"), *GOOD_ROW[1:]]], 0, "", False]), "time"),
        (_packed([1, "sse", 0, [[*GOOD_ROW[:4], "text", False, "", ""]], 0, "", False]), "preview"),
        (_packed([1, "sse", 0, [[*GOOD_ROW[:3], -5, *GOOD_ROW[4:]]], 0, "", False]), "size"),
    ],
)
def test_a_damaged_update_is_refused_with_a_reason(payload, says):
    with pytest.raises(pc.FrameError, match=says):
        decode_update(payload)


def test_random_bytes_are_refused_never_raised_otherwise():
    rng = random.Random(7)
    good = _payload(_update())
    for _ in range(2000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        with contextlib.suppress(pc.FrameError):  # refused is fine; anything else fails
            decode_update(bytes(data[: rng.randint(0, len(data))]))


def test_a_real_writer_stores_good_updates_and_skips_damaged_ones(tmp_path):
    settings = CaptureSettings(path=tmp_path / "c.sqlite3", body_cap=1024)
    proc = store_process(settings)
    assert proc.stdin is not None
    try:
        _answers(proc, pc.READY)
        record = exchange("GET", "/socket", 101)
        proc.stdin.write(pr.tunnel_frame(0, "api", ""))
        proc.stdin.write(b"".join(pr.pack_batch(1, flat([_row(record)]))[0]))
        proc.stdin.write(pc.token_frame(pc.FLUSH, 1))
        proc.stdin.flush()
        answers = _answers(proc, pc.FLUSHED)
        ((_, exchange_id),) = [
            p for i in answers if i.kind == pc.STORED for p in pr.stored_pairs(i.payload)
        ]
        proc.stdin.write(pc.frame(pc.MESSAGES, b"\x93\x01"))  # damaged: skipped
        proc.stdin.write(update_frame(_update(exchange_id, closed=True)))
        proc.stdin.write(update_frame(_update(exchange_id + 1000)))  # an exchange that is gone
        proc.stdin.write(pc.token_frame(pc.FLUSH, 2))
        proc.stdin.flush()
        _answers(proc, pc.FLUSHED)
        assert proc.poll() is None
        proc.stdin.close()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with sqlite3.connect(settings.file) as db:
        rows = db.execute("SELECT exchange_id, kind, size FROM messages ORDER BY seq").fetchall()
        closed = db.execute("SELECT messages_closed FROM exchanges").fetchall()
    assert rows == [
        (exchange_id, "text", 5),
        (exchange_id, "binary", 70_000),
        (exchange_id, "event", 3),
    ]
    assert closed == [(1,)]
