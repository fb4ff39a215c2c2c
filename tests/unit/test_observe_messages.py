"""The exchange observer past the head: WebSocket messages after a 101 (bytes held before it,
bytes in the same read as it), the per-connection cap, malformed frames, and event streams
(chunked or not; compressed ones left alone)."""

from __future__ import annotations

from websockets.frames import Frame, Opcode

from relay.agent.observe import ExchangeObserver
from relay.events import RequestRecord

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: a.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
SWITCHED = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
)


def observer(cap: int = 1000) -> tuple[ExchangeObserver, list[RequestRecord]]:
    records: list[RequestRecord] = []
    return ExchangeObserver("1.2.3.4", 1, records.append, 65536, "app", cap), records


def text(data: str, mask: bool) -> bytes:
    return Frame(Opcode.TEXT, data.encode()).serialize(mask=mask, extensions=[])


def test_messages_after_a_101_including_bytes_around_the_switch():
    obs, records = observer()
    early = text("sent before the 101", True)
    obs.request_bytes(UPGRADE + early)  # held by the framer until the answer
    obs.response_bytes(SWITCHED + text("in the 101's read", False))
    [record] = records  # reported at the 101, before any message
    log = record.capture.messages
    assert log is not None and log.protocol == "websocket" and not log.closed
    obs.request_bytes(text("later", True))
    obs.response_bytes(text("later too", False))
    obs.lost(None)
    assert log.closed
    assert [(m.direction, m.preview) for m in log.messages] == [
        ("in", b"sent before the 101"),
        ("out", b"in the 101's read"),
        ("in", b"later"),
        ("out", b"later too"),
    ]


def test_the_cap_keeps_the_first_and_counts_the_rest():
    obs, records = observer(cap=10)
    obs.request_bytes(UPGRADE)
    obs.response_bytes(SWITCHED)
    obs.response_bytes(b"".join(text(f"m{i}", False) for i in range(25)))
    log = records[0].capture.messages
    assert [m.preview for m in log.messages] == [f"m{i}".encode() for i in range(10)]
    assert log.dropped == 15


def test_a_malformed_frame_stops_the_reading_not_the_connection():
    obs, records = observer()
    obs.request_bytes(UPGRADE)
    obs.response_bytes(SWITCHED + text("fine", False) + b"\x83\x00" + text("after", False))
    log = records[0].capture.messages
    assert [m.preview for m in log.messages] == [b"fine"]
    assert "unknown opcode" in log.note and "the bytes still flow" in log.note
    obs.request_bytes(text("client side too", True))  # nothing raises; nothing more is read
    assert len(log.messages) == 1


def test_no_messages_without_captures_or_with_a_cap_of_zero():
    for obs in (ExchangeObserver("c", 1, lambda r: None, 0), observer(cap=0)[0]):
        obs.request_bytes(UPGRADE)
        obs.response_bytes(SWITCHED + text("x", False))
        assert obs.watch is None


def test_event_stream_events_chunked_and_not():
    for chunked in (True, False):
        obs, records = observer()
        obs.request_bytes(b"GET /events HTTP/1.1\r\nHost: a.localhost\r\n\r\n")
        body = [b"event: a\ndata: 1\n\n", b"data: 2\r\n", b"\r\n: bye\n"]
        if chunked:
            head = (
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            wire = [b"%x\r\n%s\r\n" % (len(p), p) for p in body] + [b"0\r\n\r\n"]
        else:
            head = b"HTTP/1.1 200 OK\r\nContent-Type: Text/Event-Stream; charset=utf-8\r\n\r\n"
            wire = body
        obs.response_bytes(head)
        for piece in wire:
            obs.response_bytes(piece)
        if not chunked:
            obs.response_eof()
        [record] = records  # an event stream is reported when it ends
        log = record.capture.messages
        assert log.protocol == "sse" and log.closed
        assert [(m.event, m.preview) for m in log.messages] == [("a", b"1"), ("message", b"2")]


def test_a_compressed_event_stream_is_not_read():
    obs, records = observer()
    obs.request_bytes(b"GET /events HTTP/1.1\r\nHost: a.localhost\r\n\r\n")
    obs.response_bytes(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: 4\r\n\r\nxxxx"
    )
    assert records[0].capture.messages is None
