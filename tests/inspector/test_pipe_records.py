"""Batch frames of exchanges and the store's answers as runs: round trips and hostile input."""

from __future__ import annotations

import contextlib
import math
import random
import struct
from dataclasses import replace

import pytest

from inspector import pipe_codec as pc
from inspector import pipe_records as pr
from inspector.in_flight import InFlight
from inspector.originals import Originals
from tests.inspector.records import exchange, observe, request_bytes

TUNNELS = {0: ("api", "http://127.0.0.1:3000"), 1: ("café ☕", "https://[::1]:8443")}


def _row(record, tunnel_id=0, total=0) -> pr.Row:  # type: ignore[no-untyped-def]
    c = record.capture
    ttfb = record.ttfb_ms
    line = f"{record.method} {record.path} HTTP/{record.http_version}\r\n\r\n".encode()
    parts = (
        (c.request_head, c.response_head, c.request_body, c.response_body)
        if c is not None
        else (line, b"", b"", b"")  # without a capture: the request line alone
    )
    cuts = (c.request_truncated, c.response_truncated) if c is not None else (pr.NO_CAPTURE, 0)
    status = record.status | int(cuts[0]) << pr.CUT_SHIFT | int(cuts[1]) << pr.ANSWER_CUT_SHIFT
    status |= tunnel_id << pr.TUNNEL_SHIFT
    return (
        record.time,
        record.duration_ms,
        math.nan if ttfb is None else ttfb,
        status,
        record.bytes_in,
        record.bytes_out,
        record.client,
        *parts,
        total,
    )  # type: ignore[return-value]


def flat(rows: list[pr.Row]) -> list[object]:
    """Rows as the writer's outbox holds them: one row's items after the other's."""
    return [item for row in rows for item in row]


def _payload(first: int, rows: list[pr.Row]) -> bytes:
    (item,) = pc.FrameDecoder(1 << 26).feed(b"".join(pr.pack_batch(first, flat(rows))[0]))
    assert item.kind == pr.RECORDS
    return item.payload


def test_a_batch_crosses_unchanged_with_non_ascii_texts_and_no_capture():
    records = [
        exchange("POST", "/pay?x=1", 201, req_body=b'{"a": 1}', resp_body=bytes(range(256))),
        exchange("GET", "/caf%C3%A9", 404),
        observe(request_bytes("GET", "/raw-\xe9t\xe9", host="h\xe9"), None, client="::1"),
    ]
    assert records[2].path == "/raw-\xe9t\xe9"  # a target's bytes read as Latin-1
    records[2].http_version = "1.0"
    records[0].capture.response_truncated = True  # type: ignore[union-attr]
    records[1].ttfb_ms = None
    plain = exchange("GET", "/none", capture_bytes=0)
    plain.capture = None
    records[2].capture = replace(  # type: ignore[union-attr]
        records[2].capture,
        request_head=records[2].capture.request_head.replace(b"1.1", b"1.0", 1),  # type: ignore[union-attr]
    )
    rows = [_row(records[0]), _row(records[1], tunnel_id=1), _row(records[2]), _row(plain)]
    decoded = pr.decode_records(_payload(7, rows), TUNNELS)
    assert [seq for seq, *_ in decoded] == [7, 8, 9, 10]
    assert decoded[1][1:3] == ("café ☕", "https://[::1]:8443")
    assert decoded[0][1:3] == decoded[3][1:3] == ("api", "http://127.0.0.1:3000")
    for (_, _, _, got), want in zip(decoded, [*records, plain], strict=True):
        # method, path and version read from the request head, the client's address sent
        assert (got.method, got.path, got.status, got.client, got.http_version) == (
            want.method,
            want.path,
            want.status,
            want.client,
            want.http_version,
        )
        assert got.ttfb_ms == want.ttfb_ms and got.time == want.time
        assert (got.bytes_in, got.bytes_out) == (want.bytes_in, want.bytes_out)
        if want.capture is None:
            assert got.capture is None
        else:
            assert got.capture == want.capture


def test_hostile_batches_are_refused_with_a_reason():
    rows = [_row(exchange("GET", f"/{i}", resp_body=b"ok")) for i in range(3)]
    good = _payload(1, rows)
    cases = {
        "shorter than its head": good[:5],
        "texts for": good.replace(b"203.0.113.7", b"203.0\x00113.7", 1),
        "request line": good.replace(b"GET", b"G\0T", 1),
        "exchanges (1 to": struct.pack("<QII", 1, 0, 0) + good[16:],
        "need at least": good[:200],
        "do not add up": good[:-1],
    }
    huge = bytearray(good)
    huge[8:12] = struct.pack("<I", pr.MAX_ROWS + 1)
    cases["exchanges (1 to "] = bytes(huge)
    for why, payload in cases.items():
        with pytest.raises(pc.FrameError, match=why.split(" (")[0]):
            pr.decode_records(payload, TUNNELS)
    # A length that moves bytes from one text to the next still adds up: the flags catch it, or
    # the texts decode into other texts; nothing is read past the frame.
    rng = random.Random(3)
    for _ in range(300):
        damaged = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        with contextlib.suppress(pc.FrameError):
            pr.decode_records(bytes(damaged), TUNNELS)


def test_bad_status_flags_and_texts_are_refused():
    row = list(_row(exchange("GET", "/x")))
    for index, value, why in (
        (3, 1000, "out of range"),
        (0, math.inf, "out of range"),
        (4, -1, "negative"),
        (3, 200 | 3 << pr.CUT_SHIFT, "unknown flags"),
        (3, 200 | 2 << pr.ANSWER_CUT_SHIFT, "unknown flags"),
        (3, 200 | 2 << pr.TUNNEL_SHIFT, "never named"),
        (3, 200 | -(1 << 62), "unknown flags"),
    ):
        bad = list(row)
        bad[index] = value
        with pytest.raises(pc.FrameError, match=why):
            pr.decode_records(_payload(1, [tuple(bad)]), TUNNELS)  # type: ignore[list-item]
    payload = bytearray(_payload(1, [tuple(row)]))  # type: ignore[list-item]
    struct.pack_into("<q", payload, 16 + 8 * (pr.FLOATS + 3), -1)  # the request head's length
    with pytest.raises(pc.FrameError, match="do not add up"):
        pr.decode_records(bytes(payload), TUNNELS)
    for index, value, why in (
        (6, "a" * (pc.MAX_TEXT + 1), "address longer than"),
        (7, row[7].replace(b"/x", b"/" + b"a" * pc.MAX_TEXT), "path longer than"),
        (7, b"GET /x\r\n\r\n", "request line"),
        (7, b"GET /x HTTP/1.1\r\r\n", "request line"),
        (7, b"GET /a b HTTP/1.1\r\n", "request line"),
        (7, b"G\x00T /x HTTP/1.1\r\n", "request line"),
        (7, b" GET /x HTTP/1.1\r\n", "request line"),
        (7, b"GET /x HTTP/11\r\n", "request line"),
    ):
        bad = list(row)
        bad[index] = value
        with pytest.raises(pc.FrameError, match=why):
            pr.decode_records(_payload(1, [tuple(bad)]), TUNNELS)  # type: ignore[list-item]
    # A NUL inside an address: that exchange goes with no address and no request head (the
    # store does not keep it), the others in the batch as they are; so does a NUL in a path.
    nul = list(row)
    nul[6] = "203.0\0.113.7"
    in_path = list(row)
    in_path[7] = row[7].replace(b"/x", b"/x\x00y")
    rows = [tuple(nul), tuple(row), tuple(in_path)]
    decoded = pr.decode_records(_payload(1, rows), TUNNELS)  # type: ignore[arg-type]
    assert decoded[0][3].method == "" and decoded[0][3].client == ""
    assert decoded[1][3].path == "/x" and decoded[1][3].client == "203.0.113.7"
    assert decoded[2][3].method == "" and decoded[2][3].client == "203.0.113.7"
    payload = bytearray(_payload(1, [tuple(row)]))  # type: ignore[list-item]
    at = payload.index(b"203.0")
    payload[at] = 0xFF  # not UTF-8
    with pytest.raises(pc.FrameError, match="not UTF-8"):
        pr.decode_records(bytes(payload), TUNNELS)
    assert pr.records_seqs(bytes(payload)) == (1, 1)
    assert pr.records_seqs(b"\x00" * 3) is None


def test_tunnel_frames_name_ids_and_refuse_hostile_ones():
    (item,) = pc.FrameDecoder(1 << 20).feed(pr.tunnel_frame(5, "café ☕", "http://127.0.0.1:1"))
    assert item.kind == pr.TUNNEL
    assert pr.decode_tunnel(item.payload) == (5, "café ☕", "http://127.0.0.1:1")
    good = item.payload
    cases = {
        "shorter than its id": good[:7],
        "below": struct.pack("<Q", pr.MAX_TUNNELS) + good[8:],
        "not UTF-8": good[:8] + b"\xff" + good[9:],
        "3 texts": good + b"\0x",
        "1 texts": good[:8] + b"no-target",
        "longer than": good[:8] + b"a" * (pc.MAX_TEXT + 1) + b"\0t",
    }
    for why, payload in cases.items():
        with pytest.raises(pc.FrameError, match=why):
            pr.decode_tunnel(payload)
    rng = random.Random(5)
    for _ in range(300):
        damaged = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        with contextlib.suppress(pc.FrameError):
            tunnel_id, tunnel, target = pr.decode_tunnel(bytes(damaged[: rng.randrange(40)]))
            assert tunnel_id < pr.MAX_TUNNELS and "\0" not in tunnel + target


def test_runs_decode_and_refuse_bad_lengths():
    frame = pr.runs_frame(pc.STORED, [(1, 10, 3), (4, -1, 2), (6, 13, 1)])
    (item,) = pc.FrameDecoder(1 << 20).feed(frame)
    assert pr.stored_pairs(item.payload) == [(1, 10), (2, 11), (3, 12), (6, 13)]
    assert pr.dropped_seqs(item.payload) == [4, 5]
    with pytest.raises(pc.FrameError, match="not whole"):
        pr.decode_runs(item.payload[:-1])
    with pytest.raises(pc.FrameError, match="no exchanges"):
        pr.decode_runs(struct.pack("<QqI", 1, 1, 0))


def test_answers_release_whole_batches_and_count_what_the_store_skipped():
    originals = Originals()
    flight = InFlight(originals)
    rows = [_row(exchange("GET", f"/{i}"), total=100 * (i + 1)) for i in range(6)]
    flight.sent(1, 3, pr.pack_batch(1, flat(rows[:3]))[1], 300)
    flight.sent(4, 3, pr.pack_batch(1, flat(rows[3:]))[1], 300)
    seen: list[tuple[int, int, int]] = []
    flight.answered_runs([(1, 50, 2)], 6, lambda *run: seen.append(run))
    assert (flight.answered, flight.released_bytes, len(originals)) == (2, 0, 0)
    # seq 3 skipped (a frame the store could not read), 4 not stored, 5-6 stored
    flight.answered_runs([(4, -1, 1), (5, 52, 2)], 6, lambda *run: seen.append(run))
    assert (flight.answered, flight.stored, flight.lost) == (6, 4, 2)
    assert flight.released_bytes == 600 and len(originals) == 6
    assert seen == [(50, 1, 2), (52, 5, 2)]
    assert originals.get(50).head.startswith(b"GET /0 ")  # type: ignore[union-attr]
    assert originals.get(53).head.startswith(b"GET /5 ")  # type: ignore[union-attr]
    assert originals.get(51).head.startswith(b"GET /1 ")  # type: ignore[union-attr]
    assert originals.get(54) is None  # no such id
    # Answers again, or past what was submitted, are not believed.
    flight.answered_runs([(5, 52, 2), (7, 60, 5)], 6, lambda *run: seen.append(run))
    assert (flight.answered, flight.stored, flight.lost) == (6, 4, 2)


def test_originals_in_batches_are_bounded_by_count_and_bytes():
    kept = Originals(max_entries=4, max_bytes=10_000)
    rows = [_row(exchange("GET", f"/{i}")) for i in range(9)]
    kept.put_batch(1, pr.pack_batch(1, flat(rows[:3]))[1])
    kept.put_run(100, 1, 3)
    kept.put_batch(4, pr.pack_batch(1, flat(rows[3:6]))[1])
    kept.put_run(103, 4, 3)
    assert len(kept) == 6  # over the count by less than the oldest batch: kept whole
    kept.put_batch(7, pr.pack_batch(1, flat(rows[6:]))[1])
    kept.put_run(106, 7, 3)
    assert len(kept) == 6 and kept.get(100) is None and kept.get(103) is not None
    big = [_row(exchange("POST", "/big", req_body=b"x" * 40_000))]
    kept.put_batch(10, pr.pack_batch(1, flat(big))[1])  # its request's bytes alone over the bound
    kept.put_run(109, 10, 1)
    assert kept.get(109) is None  # over the bytes bound by itself: not kept
    kept.clear()
    assert len(kept) == 0 and kept.get(106) is None


def test_originals_keep_a_batchs_requests_alone_with_their_cut_flags():
    cut = exchange("POST", "/cut", req_body=b"y" * 100, capture_bytes=10)
    whole = exchange("POST", "/whole", req_body=b"z" * 5, resp_body=b"r" * 5000)
    plain = exchange("GET", "/plain")
    plain.capture = None
    rows = flat([_row(cut), _row(whole), _row(plain)])
    heads, bodies, flags, nbytes = requests = pr.pack_batch(1, rows)[1]
    assert pr.pack_batch(1, rows)[1] == requests  # what the sender keeps, taken as it packs
    # The responses are neither held nor counted: only what a replay sends.
    assert nbytes == sum(map(len, heads)) + sum(map(len, bodies)) < 5000
    assert b"r" * 5000 not in bodies and len(flags) == 3
    kept = Originals()
    kept.put_batch(1, requests)
    kept.put_run(10, 1, 3)
    first, second = kept.get(10), kept.get(11)
    assert first is not None and first.truncated and first.body == b"y" * 10
    assert second is not None and not second.truncated and second.body == b"z" * 5
    assert second.head.startswith(b"POST /whole HTTP/1.1\r\n")
    assert kept.get(12) is None  # no capture: nothing to replay from here


def test_the_limits_move_with_the_answers_and_drop_to_nothing_when_the_store_fails():
    flight = InFlight(Originals(), max_count=5, max_bytes=1000)
    assert (flight.count_limit, flight.bytes_limit) == (5, 1000)
    rows = [_row(exchange("GET", f"/{i}")) for i in range(3)]
    flight.sent(1, 3, pr.pack_batch(1, flat(rows))[1], 600)
    flight.answered_runs([(1, 10, 2)], 3, lambda *run: None)
    assert (flight.count_limit, flight.bytes_limit) == (7, 1000)  # the batch is not all answered
    flight.answered_runs([(3, 12, 1)], 3, lambda *run: None)
    assert (flight.count_limit, flight.bytes_limit) == (8, 1600)
    flight.stop()
    assert (flight.count_limit, flight.bytes_limit) == (-1, -1)
    flight.ended(3, 600)
    assert (flight.count_limit, flight.bytes_limit) == (-1, -1)  # stopped stays stopped
