"""The observer's capture of bodies: one piece kept as it is, the cap, pieces joined."""

from __future__ import annotations

from relay.agent.observe import ExchangeObserver
from relay.events import RequestRecord

REQUEST = b"GET /x HTTP/1.1\r\nHost: a.localhost\r\n\r\n"


def answer(pieces: list[bytes], cap: int) -> RequestRecord:
    records: list[RequestRecord] = []
    obs = ExchangeObserver("1.2.3.4", 1, records.append, cap, "app", 1000)
    obs.request_bytes(REQUEST)
    size = sum(len(p) for p in pieces)
    obs.response_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
    for piece in pieces:
        obs.response_bytes(piece)
    [record] = records
    return record


def test_a_body_in_one_piece_that_fits_is_kept_as_that_piece():
    piece = b"0123456789"
    for cap in (10, 11, 1 << 20):
        capture = answer([piece], cap).capture
        assert capture is not None
        assert capture.response_body is piece and not capture.response_truncated


def test_a_body_longer_than_the_cap_is_cut_and_marked_in_one_piece_or_many():
    for pieces in ([b"0123456789"], [b"0123", b"456", b"789"], [b"", b"0123456789"]):
        capture = answer(pieces, 6).capture
        assert capture is not None
        assert capture.response_body == b"012345" and capture.response_truncated


def test_pieces_within_the_cap_are_joined_whole():
    capture = answer([b"01", b"2345", b"6789"], 10).capture
    assert capture is not None
    assert capture.response_body == b"0123456789" and not capture.response_truncated
    assert capture.request_head == REQUEST and capture.response_head.startswith(b"HTTP/1.1 200")


def test_no_capture_at_a_cap_of_zero():
    assert answer([b"0123456789"], 0).capture is None
