"""HTTP/1.1 framing without a network: where messages start and end, bodies passed through
byte-exact however the bytes are split, and ambiguous or oversized requests refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.events import parse_header_lines
from relay.http.framing import (
    MESSAGE_END,
    Http1Framer,
    HttpError,
    RequestHead,
    ResponseHead,
    Unsolicited,
    forwarded_head,
    header_list,
    header_value,
)

GET = b"GET /a?b=1 HTTP/1.1\r\nHost: app.localhost:8080\r\nAccept: */*\r\n\r\n"
CHUNKED_HEAD = (
    b"POST /upload HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n"
    b"Trailer: X-Checksum\r\n\r\n"
)
CHUNKED_BODY = (
    b"5;name=value\r\nhello\r\n"
    b'1A;quoted="a;b"\r\nabcdefghijklmnopqrstuvwxyz\r\n'
    b"3\r\n\r\n\r\r\n"  # data that looks like line ends
    b"0;final\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
)


def normalise(items: list) -> list:
    """Join runs of body bytes: how the input was split must not matter."""
    out: list = []
    for item in items:
        if type(item) is bytes:
            if not item:
                continue
            if out and type(out[-1]) is bytes:
                out[-1] += item
                continue
        out.append(item)
    return out


def feed(framer: Http1Framer, pieces: list[bytes]) -> list:
    items: list = []
    for piece in pieces:
        items.extend(framer.receive(piece))
    return items


def frame_all(data: bytes, kind: str = "request", pieces: list[bytes] | None = None, **kw) -> list:
    framer = Http1Framer(kind, **kw)
    return normalise(feed(framer, pieces if pieces is not None else [data]))


def splits(data: bytes):
    """Every way to cut ``data`` in two, then byte by byte."""
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]
    yield [data[i : i + 1] for i in range(len(data))]


def body_bytes(items: list) -> bytes:
    return b"".join(i for i in items if type(i) is bytes)


def reject(data: bytes, kind: str = "request", **kw) -> HttpError:
    with pytest.raises(HttpError) as info:
        Http1Framer(kind, **kw).receive(data)
    return info.value


# -- request heads --------------------------------------------------------------------------------


def test_request_head_is_parsed():
    head, end = Http1Framer("request").receive(GET)
    assert isinstance(head, RequestHead)
    assert (head.method, head.target, head.version) == ("GET", b"/a?b=1", "1.1")
    assert head.raw == GET
    assert head.host == "app.localhost:8080"
    assert not head.upgrade and not head.has_forwarded
    assert end is MESSAGE_END


def test_the_raw_head_keeps_every_line_in_order():
    data = b"GET / HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nx-dup: 2\r\nX-DUP: 3\r\nCookie: c=1\r\n\r\n"
    (head, _) = Http1Framer("request").receive(data)
    assert head.raw == data
    assert parse_header_lines(head.raw) == [
        ("Host", "a"),
        ("X-Dup", "1"),
        ("x-dup", "2"),
        ("X-DUP", "3"),
        ("Cookie", "c=1"),
    ]


def test_head_split_at_every_byte_boundary_gives_the_same_items():
    whole = frame_all(GET)
    assert [type(i) for i in whole] == [RequestHead, type(MESSAGE_END)]
    for pieces in splits(GET):
        assert frame_all(GET, pieces=pieces) == whole


def test_head_split_keeps_the_framer_between_messages_only_at_the_end():
    framer = Http1Framer("request")
    assert framer.between_messages
    assert framer.receive(GET[:10]) == []
    assert not framer.between_messages
    assert len(framer.receive(GET[10:])) == 2
    assert framer.between_messages


def test_empty_lines_before_a_request_are_ignored():
    assert frame_all(b"\r\n\r\n" + GET) == frame_all(GET)


def test_pipelined_keep_alive_requests():
    data = (
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /three HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /four HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
    )
    items = frame_all(data)
    shape = [(i.method, i.target) if isinstance(i, RequestHead) else i for i in items]
    assert shape == [
        ("GET", b"/one"),
        MESSAGE_END,
        ("POST", b"/two"),
        b"hello",
        MESSAGE_END,
        ("GET", b"/three"),
        MESSAGE_END,
        ("POST", b"/four"),
        MESSAGE_END,
    ]
    for pieces in splits(data):
        assert frame_all(data, pieces=pieces) == items


def test_content_length_body_passes_in_pieces():
    body = bytes(range(256)) * 40
    head = b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body)
    framer = Http1Framer("request")
    items = framer.receive(head + body[:100])
    assert isinstance(items[0], RequestHead) and items[1] == body[:100]
    for start in range(100, len(body), 777):
        piece = body[start : start + 777]
        got = framer.receive(piece)
        if start + 777 < len(body):
            assert got == [piece]
    assert got[-1] is MESSAGE_END
    assert framer.between_messages


def test_content_length_body_followed_by_next_request_in_one_read():
    data = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" + GET
    items = frame_all(data)
    assert items[1:3] == [b"abc", MESSAGE_END]
    assert items[3].raw == GET


# -- chunked request bodies -----------------------------------------------------------------------


def test_chunked_body_passes_byte_exact_with_extensions_and_trailers():
    items = frame_all(CHUNKED_HEAD + CHUNKED_BODY)
    assert isinstance(items[0], RequestHead)
    assert items[1] == CHUNKED_BODY
    assert items[2] is MESSAGE_END and len(items) == 3


def test_chunked_body_at_every_split_point():
    data = CHUNKED_HEAD + CHUNKED_BODY
    for pieces in splits(data):
        framer = Http1Framer("request")
        items = feed(framer, pieces)
        assert body_bytes(items[1:]) == CHUNKED_BODY
        assert items.count(MESSAGE_END) == 1 and items[-1] is MESSAGE_END
        assert framer.between_messages


def test_chunked_request_followed_by_another_request():
    data = CHUNKED_HEAD + CHUNKED_BODY + GET
    items = frame_all(data)
    kinds = [type(i) for i in items]
    assert kinds == [RequestHead, bytes, type(MESSAGE_END), RequestHead, type(MESSAGE_END)]
    assert items[3].raw == GET


@st.composite
def chunked_bodies(draw: st.DrawFn) -> bytes:
    parts = []
    for data in draw(st.lists(st.binary(min_size=1, max_size=40), max_size=6)):
        ext = draw(st.sampled_from([b"", b";a=b", b";x", b';q="1;2"', b";a;b=c", b';e=""']))
        size = b"%x" % len(data)
        if draw(st.booleans()):
            size = size.upper()
        parts.append(size + ext + b"\r\n" + data + b"\r\n")
    parts.append(b"0\r\n")
    for i in range(draw(st.integers(0, 2))):
        parts.append(b"T%d: v\r\n" % i)
    parts.append(b"\r\n")
    return b"".join(parts)


@settings(max_examples=150)
@given(chunked_bodies(), st.lists(st.integers(1, 400), max_size=8))
def test_any_chunked_body_split_anywhere_passes_byte_exact(body, cuts):
    data = CHUNKED_HEAD + body + GET
    points = sorted({c % len(data) for c in cuts} - {0})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    items = feed(Http1Framer("request"), pieces)
    ends = [i for i, item in enumerate(items) if item is MESSAGE_END]
    assert len(ends) == 2
    assert body_bytes(items[1 : ends[0]]) == body
    assert items[ends[0] + 1].raw == GET


@pytest.mark.parametrize(
    "body",
    [
        b"5\r\nhelloXX0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhello\rX",
        b"3\r\nabcd\r\n0\r\n\r\n",
    ],
)
def test_chunk_data_not_followed_by_crlf_is_an_error(body):
    data = CHUNKED_HEAD + body
    for pieces in splits(data):
        with pytest.raises(HttpError) as info:
            feed(Http1Framer("request"), pieces)
        assert info.value.status == 400


@pytest.mark.parametrize(
    "size_line", [b"zz\r\n", b"-5\r\n", b"+5\r\n", b"0x5\r\n", b"\r\n", b";ext\r\n"]
)
def test_bad_chunk_size_is_an_error(size_line):
    assert reject(CHUNKED_HEAD + size_line + b"hello\r\n").status == 400


@pytest.mark.parametrize(
    ("size_line", "length"),
    [(b"1_0\r\n", 16), (b"0_0\r\n", 0), (b"\x0b5\r\n", 5), (b"5\x0c\r\n", 5), (b"5\n\r\n", 5)],
    ids=repr,
)
def test_chunk_size_must_be_plain_hex_digits(size_line, length):
    data = b"x" * length + b"\r\n" if length else b""
    assert reject(CHUNKED_HEAD + size_line + data + b"0\r\n\r\n").status == 400


def test_endless_chunk_size_line_is_an_error():
    framer = Http1Framer("request")
    framer.receive(CHUNKED_HEAD + b"5")
    with pytest.raises(HttpError) as info:
        for _ in range(10):
            framer.receive(b"0" * 1000)
    assert info.value.status == 400


# -- refusing ambiguous requests ------------------------------------------------------------------

SMUGGLING = {
    "cl and te": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n",
    "te and cl": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Length: 5\r\n\r\n",
    "two cl": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
    "two different cl": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
    b"Content-Length: 6\r\n\r\n",
    "cl list": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
    "cl sign": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
    "cl hex": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
    "space before colon": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n",
    "te space before colon": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
    "obs-fold tab": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n",
    "obs-fold hides cl": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n Content-Length: 5\r\n\r\n",
    "bare lf hides cl": b"GET / HTTP/1.1\r\nHost: a\r\nX: y\nContent-Length: 5\r\n\r\n",
    "bare cr hides cl": b"GET / HTTP/1.1\r\nHost: a\r\nX: y\rContent-Length: 5\r\n\r\n",
    "two hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "nul in target": b"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n",
    "not http": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
}


@pytest.mark.parametrize("data", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_ambiguous_requests_are_bad_requests(data):
    assert reject(data + b"hello").status == 400


def test_http10_request_with_transfer_encoding_is_a_bad_request():
    data = b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert reject(data).status == 400


def test_connect_is_refused():
    error = reject(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    assert error.status == 400


# -- limits ---------------------------------------------------------------------------------------


def test_head_larger_than_max_head_is_431_while_incomplete():
    framer = Http1Framer("request", max_head=1024)
    framer.receive(b"GET / HTTP/1.1\r\nHost: a\r\n")
    with pytest.raises(HttpError) as info:
        for _ in range(20):
            framer.receive(b"X-Filler: " + b"y" * 90 + b"\r\n")
    assert info.value.status == 431


def test_head_larger_than_max_head_is_431_when_complete_in_one_read():
    data = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"y" * 2000 + b"\r\n\r\n"
    assert reject(data, max_head=1024).status == 431
    assert len(Http1Framer("request", max_head=len(data)).receive(data)) == 2


def test_more_header_lines_than_max_headers_is_431():
    def head(n: int) -> bytes:
        lines = b"".join(b"X-H%d: v\r\n" % i for i in range(n - 1))
        return b"GET / HTTP/1.1\r\nHost: a\r\n" + lines + b"\r\n"

    assert len(Http1Framer("request", max_headers=10).receive(head(10))) == 2
    assert reject(head(11), max_headers=10).status == 431


# -- upgrades -------------------------------------------------------------------------------------

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)


def test_upgrade_request_holds_bytes_until_answered_then_raw():
    framer = Http1Framer("request")
    items = framer.receive(UPGRADE + b"\x81\x05hello")
    assert isinstance(items[0], RequestHead) and items[0].upgrade
    assert body_bytes(items) == b""  # held: the upgrade is not accepted yet
    assert framer.waiting_for_upgrade and not framer.raw
    assert framer.upgrade_accepted() == b"\x81\x05hello"
    assert framer.raw
    # Anything at all now passes untouched, even what looks like HTTP.
    assert framer.receive(GET) == [GET]
    assert framer.receive(b"\x00\xff") == [b"\x00\xff"]


def test_refused_upgrade_goes_back_to_http():
    framer = Http1Framer("request")
    framer.receive(UPGRADE)
    assert framer.receive(GET) == []  # held while the upgrade is pending
    items = framer.upgrade_refused()
    assert isinstance(items[0], RequestHead) and items[0].raw == GET
    assert not framer.raw


def test_upgrade_request_split_anywhere():
    data = UPGRADE + b"\x81\x05hello"
    for pieces in splits(data):
        framer = Http1Framer("request")
        items = feed(framer, pieces)
        assert items[0].upgrade
        assert framer.upgrade_accepted() == b"\x81\x05hello"


# -- responses ------------------------------------------------------------------------------------


def response_framer(*methods: str | tuple[str, bool]) -> Http1Framer:
    framer = Http1Framer("response")
    for method in methods:
        if isinstance(method, tuple):
            framer.expect_response_to(*method)
        else:
            framer.expect_response_to(method)
    return framer


def statuses(items: list) -> list[int]:
    return [i.status for i in items if isinstance(i, ResponseHead)]


def test_response_with_content_length():
    framer = response_framer("GET")
    items = framer.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    assert statuses(items) == [200]
    assert items[1:] == [b"hello", MESSAGE_END]
    assert framer.between_messages


def test_head_response_with_content_length_has_no_body():
    framer = response_framer("HEAD", "GET")
    data = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    items = normalise(framer.receive(data))
    assert statuses(items) == [200, 200]
    assert items[1] is MESSAGE_END
    assert items[3:] == [b"ok", MESSAGE_END]


def test_head_response_with_chunked_has_no_body():
    framer = response_framer("HEAD", "GET")
    data = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    items = normalise(framer.receive(data))
    assert statuses(items) == [200, 200]
    assert items[1] is MESSAGE_END and items[-2:] == [b"ok", MESSAGE_END]


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status):
    framer = response_framer("GET", "GET")
    length = b"Content-Length: 50\r\n" if status == 304 else b""
    data = (
        b"HTTP/1.1 %d X\r\n%s\r\n" % (status, length)
        + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    items = normalise(framer.receive(data))
    assert statuses(items) == [status, 200]
    assert items[1] is MESSAGE_END and items[-2:] == [b"ok", MESSAGE_END]


def test_100_continue_then_200():
    data = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    for pieces in splits(data):
        items = normalise(feed(response_framer("POST", "GET"), pieces))
        assert statuses(items) == [100, 200, 200]
        assert [i for i in items if type(i) is bytes] == [b"done", b"ok"]
        assert items[-1] is MESSAGE_END


def test_103_early_hints_then_200():
    framer = response_framer("GET")
    items = normalise(
        framer.receive(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        )
    )
    assert statuses(items) == [103, 200]
    assert items[-2:] == [b"ok", MESSAGE_END]


def test_101_after_an_upgrade_request_makes_the_rest_raw():
    framer = response_framer(("GET", True))
    items = framer.receive(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"\x81\x02hi"
    )
    assert statuses(items) == [101]
    assert body_bytes(items) == b"\x81\x02hi"
    assert framer.raw
    assert framer.receive(b"HTTP/1.1 200 OK\r\n\r\n") == [b"HTTP/1.1 200 OK\r\n\r\n"]


def test_refused_upgrade_stays_http():
    framer = response_framer(("GET", True), "GET")
    items = normalise(
        framer.receive(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nno!"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        )
    )
    assert statuses(items) == [400, 200]
    assert not framer.raw


def test_read_until_close_body_ends_at_eof():
    framer = response_framer("GET")
    items = framer.receive(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nabc")
    assert statuses(items) == [200] and items[1:] == [b"abc"]
    assert framer.receive(b"HTTP/1.1 200 OK\r\n\r\n") == [b"HTTP/1.1 200 OK\r\n\r\n"]
    assert framer.eof() == [MESSAGE_END]
    assert framer.eof() == []


def test_response_transfer_encoding_not_chunked_reads_until_close():
    framer = response_framer("GET")
    items = framer.receive(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b")
    assert items[1:] == [b"\x1f\x8b"]
    assert framer.eof() == [MESSAGE_END]


def test_chunked_response_passes_byte_exact():
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNKED_BODY
    for pieces in splits(data):
        items = feed(response_framer("GET"), pieces)
        assert body_bytes(items[1:]) == CHUNKED_BODY
        assert items[-1] is MESSAGE_END


def test_eof_in_the_middle_of_a_message_ends_nothing():
    framer = response_framer("GET")
    framer.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    assert framer.eof() == []


def test_malformed_response_is_an_error():
    with pytest.raises(HttpError) as info:
        response_framer("GET").receive(b"HTTP/1.1 abc OK\r\n\r\n")
    assert info.value.status == 400


# -- forwarding headers ---------------------------------------------------------------------------


def head_of(data: bytes) -> RequestHead:
    head = Http1Framer("request").receive(data)[0]
    assert isinstance(head, RequestHead)
    return head


def test_forwarded_head_appends_the_three_headers():
    out = forwarded_head(head_of(GET), "203.0.113.7", "https")
    assert out == GET[:-2] + (
        b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n"
        b"X-Forwarded-Host: app.localhost:8080\r\n\r\n"
    )
    assert frame_all(out)[1:] == [MESSAGE_END]


def test_forwarded_head_keeps_every_other_line_byte_exact():
    data = (
        b"POST /p HTTP/1.1\r\nhOST: app.localhost\r\nX-Dup: 1\r\nx-dup:2\r\n"
        b"Forwarded: for=1.2.3.4\r\nContent-Length: 0\r\n\r\n"
    )
    out = forwarded_head(head_of(data), "10.0.0.1", "http")
    assert out.startswith(data[:-2])
    assert out.endswith(b"X-Forwarded-Host: app.localhost\r\n\r\n")


def test_forwarded_head_drops_client_sent_forwarded_lines():
    data = (
        b"GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Forwarded-For: 6.6.6.6\r\n"
        b"Accept: */*\r\nx-forwarded-proto: https\r\nX-FORWARDED-HOST: evil\r\n"
        b"X-Forwarded-Port: 1\r\nX-Forwardedness: kept\r\n\r\n"
    )
    out = forwarded_head(head_of(data), "10.0.0.1", "http")
    assert out == (
        b"GET / HTTP/1.1\r\nHost: app.localhost\r\nAccept: */*\r\nX-Forwardedness: kept\r\n"
        b"X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
        b"X-Forwarded-Host: app.localhost\r\n\r\n"
    )


def test_forwarded_head_with_client_lines_is_still_one_request():
    data = b"GET / HTTP/1.1\r\nHost: a.localhost\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"
    out = forwarded_head(head_of(data), "10.0.0.1", "http")
    items = frame_all(out)
    assert [type(i) for i in items] == [RequestHead, type(MESSAGE_END)]
    assert ("X-Forwarded-For", "10.0.0.1") in parse_header_lines(items[0].raw)
    assert b"6.6.6.6" not in out


def test_forwarded_head_with_an_empty_host():
    out = forwarded_head(head_of(b"GET / HTTP/1.0\r\nHost:\r\n\r\n"), "::1", "http")
    assert out == (
        b"GET / HTTP/1.0\r\nHost:\r\nX-Forwarded-For: ::1\r\nX-Forwarded-Proto: http\r\n"
        b"X-Forwarded-Host: \r\n\r\n"
    )


# -- robustness -----------------------------------------------------------------------------------

http_ish = st.lists(
    st.sampled_from(
        [GET, CHUNKED_HEAD, UPGRADE, b"\r\n", b"0\r\n", b"5\r\nhello\r\n", b"HTTP/1.1 200 OK\r\n"]
    )
    | st.binary(max_size=40),
    max_size=6,
).map(b"".join)


@settings(max_examples=300)
@given(http_ish, st.sampled_from(["request", "response"]), st.integers(1, 50))
def test_any_bytes_give_items_or_http_error(data, kind, step):
    framer = Http1Framer(kind, max_head=512, max_headers=8)
    if kind == "response":
        framer.expect_response_to("GET")
    try:
        for i in range(0, len(data), step):
            for item in framer.receive(data[i : i + step]):
                assert isinstance(item, (RequestHead, ResponseHead, bytes, Unsolicited)) or (
                    item is MESSAGE_END
                )
                if isinstance(item, Unsolicited):
                    assert kind == "response"
        framer.eof()
    except HttpError as exc:
        assert exc.status in (400, 431, 501, 505)


# -- every split gives the same result ------------------------------------------------------------


def outcome(data: bytes, pieces: list[bytes], kind: str = "request") -> list | tuple[int, str]:
    """The normalised items, or the error's status and message."""
    try:
        return normalise(feed(Http1Framer(kind), pieces))
    except HttpError as exc:
        return (exc.status, exc.message)


def same_at_every_split(data: bytes) -> list | tuple[int, str]:
    whole = outcome(data, [data])
    for pieces in splits(data):
        assert outcome(data, pieces) == whole, pieces
    return whole


PIPELINE = (
    b"\r\nGET /one HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n"
    + CHUNKED_HEAD
    + CHUNKED_BODY
    + b"PUT /p HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n\r\n\r\n"
    b"GET http://b.example:8080/x?y HTTP/1.1\r\nHost: a\r\n\r\n"
    b"HEAD / HTTP/1.0\r\nHost: a\r\nAuthorization: Basic eDp5\r\n\r\n"
)


def test_a_varied_pipeline_frames_the_same_at_every_split():
    items = same_at_every_split(PIPELINE)
    assert isinstance(items, list)
    heads = [i for i in items if isinstance(i, RequestHead)]
    assert [(h.method, h.target, h.host) for h in heads] == [
        ("GET", b"/one", "a"),
        ("POST", b"/upload", "app.localhost"),
        ("PUT", b"/p", "a"),
        ("GET", b"http://b.example:8080/x?y", "b.example:8080"),
        ("HEAD", b"/", "a"),
    ]
    assert items.count(MESSAGE_END) == 5


ERRORS_AT_EVERY_SPLIT = {
    "smuggled after last chunk": (CHUNKED_HEAD + b"0\r\n\nGET /smuggled HTTP/1.1\r\n\r\n", 400),
    "bare lf after chunk size": (CHUNKED_HEAD + b"5\nhello\r\n0\r\n\r\n", 400),
    "chunk size space": (CHUNKED_HEAD + b"5 \t\r\nhello\r\n0\r\n\r\n", 400),
    "lf in chunk extension": (CHUNKED_HEAD + b"5;a\nb\r\nhello\r\n0\r\n\r\n", 400),
    "bad trailer": (CHUNKED_HEAD + b"0\r\nGET /x HTTP/1.1\r\n\r\n", 400),
    "te identity chunked": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    "second request without host": (GET + b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    "two authorization": (
        b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: a\r\nauthorization: b\r\n\r\n",
        400,
    ),
}


@pytest.mark.parametrize(
    ("data", "status"), ERRORS_AT_EVERY_SPLIT.values(), ids=ERRORS_AT_EVERY_SPLIT.keys()
)
def test_errors_are_the_same_at_every_split(data, status):
    got = same_at_every_split(data)
    assert isinstance(got, tuple) and got[0] == status


# -- strict chunked framing -----------------------------------------------------------------------


def chunked_request(body: bytes) -> bytes:
    return b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body


@pytest.mark.parametrize(
    "size_line",
    [
        b"5",
        b"5;a",
        b"5;a=b",
        b"5;a;b;c=d",
        b'5;a=""',
        b'5;a="x y;z,\\"\\\\"',
        b"5;a=\x80\xff".replace(b"=\x80\xff", b'="\x80\xff"'),
        b"0000000000000005",
        b"000000000000000A".replace(b"A", b"5"),
        b"5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~",
    ],
    ids=repr,
)
def test_valid_chunk_lines_pass(size_line):
    body = size_line + b"\r\nhello\r\n0\r\n\r\n"
    items = same_at_every_split(chunked_request(body))
    assert items[1:] == [body, MESSAGE_END]


@pytest.mark.parametrize(
    ("size_line", "rule"),
    [
        (b"5 ", "whitespace around chunk size"),
        (b"5\t", "whitespace around chunk size"),
        (b" 5", "whitespace around chunk size"),
        (b"5 \t", "whitespace around chunk size"),
        (b"5 ;a=b", "whitespace around chunk size"),
        (b"0x5", "not hex digits"),
        (b"5_0", "not hex digits"),
        (b"-5", "not hex digits"),
        (b"00000000000000005", "longer than 16 hex digits"),
        (b";a", "chunk size missing"),
        (b"", "chunk size missing"),
        (b"5; a", "is not ;name[=value]"),
        (b"5;a =b", "is not ;name[=value]"),
        (b"5;a= b", "is not ;name[=value]"),
        (b"5;", "is not ;name[=value]"),
        (b"5;=b", "is not ;name[=value]"),
        (b"5;a=", "is not ;name[=value]"),
        (b"5;a=b c", "is not ;name[=value]"),
        (b'5;a="open', "is not ;name[=value]"),
        (b'5;a="x"y', "is not ;name[=value]"),
        (b"5;a@=b", "is not ;name[=value]"),
        (b"5;a=b\x00", "control character in a chunk extension"),
        (b'5;a="\x00"', "control character in a chunk extension"),
        (b"5;a=\x01", "control character in a chunk extension"),
        (b"5;a=\x7f", "control character in a chunk extension"),
        (b"5;a=b\rc", "bare CR"),
        (b"5\r", "bare CR"),
        (b"5;a\nb", "bare LF"),
        (b"5\n", "bare LF"),
    ],
    ids=repr,
)
def test_invalid_chunk_lines_are_refused_naming_the_rule(size_line, rule):
    got = same_at_every_split(chunked_request(size_line + b"\r\nhello\r\n0\r\n\r\n"))
    assert isinstance(got, tuple)
    assert got[0] == 400 and rule in got[1], got


@pytest.mark.parametrize(
    ("ending", "rule"),
    [
        (b"0\n\r\n", "bare LF"),
        (b"0\r\n\n", "bare LF"),
        (b"0\r\n\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", "bare LF"),
        (b"0\r\nX: y\n\r\n", "bare LF"),
        (b"0\r\nX: y\r\n\n", "bare LF"),
        (b"0\r\n\r\r\n", "bare CR"),
        (b"0\r\nX: y\rz\r\n\r\n", "bare CR"),
        (b"0\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", "is not a header field"),
        (b"0\r\nNoColon\r\n\r\n", "is not a header field"),
        (b"0\r\nX : y\r\n\r\n", "is not a header field"),
        (b"0\r\n: y\r\n\r\n", "is not a header field"),
        (b"0\r\nX: y\r\n folded\r\n\r\n", "is not a header field"),
        (b"0\r\n\tX: y\r\n\r\n", "is not a header field"),
        (b"0\r\nX: \x00\r\n\r\n", "control character in a trailer field"),
        (b"0\r\nX: a\x01b\r\n\r\n", "control character in a trailer field"),
        (b"0\r\nContent-Length: 5\r\n\r\n", "not allowed in a trailer"),
        (b"0\r\nTransfer-Encoding: chunked\r\n\r\n", "not allowed in a trailer"),
        (b"0\r\nHost: evil\r\n\r\n", "not allowed in a trailer"),
        (b"0\r\nAuthorization: Basic eDp5\r\n\r\n", "not allowed in a trailer"),
        (b"0\r\nX_Forwarded_For: 6.6.6.6\r\n\r\n", "not allowed in a trailer"),
    ],
    ids=repr,
)
def test_invalid_last_chunk_and_trailers_are_refused_naming_the_rule(ending, rule):
    got = same_at_every_split(chunked_request(b"5\r\nhello\r\n" + ending))
    assert isinstance(got, tuple)
    assert got[0] == 400 and rule in got[1], got


def test_valid_trailers_pass():
    ending = b"0\r\nX-Sum: abc\r\nX-Empty:\r\nX-Tab:\tv\t\r\nX-Obs: \x80\xff\r\n\r\n"
    items = same_at_every_split(chunked_request(b"5\r\nhello\r\n" + ending) + GET)
    assert items[1] == b"5\r\nhello\r\n" + ending
    assert items[3].raw == GET


def test_too_many_trailer_lines_is_431():
    trailers = b"".join(b"T%d: v\r\n" % i for i in range(11))
    data = chunked_request(b"0\r\n" + trailers + b"\r\n")
    assert reject(data, max_headers=10).status == 431
    assert len(frame_all(data, max_headers=11)) == 3


def test_an_overlong_chunk_line_is_refused_whole_or_split():
    data = chunked_request(b"5;a=" + b"b" * 5000 + b"\r\nhello\r\n0\r\n\r\n")
    assert same_at_every_split(data) == (400, "chunk header line too long")


def test_response_chunks_are_held_to_the_same_rules():
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for bad in (b"5 \r\nhello\r\n0\r\n\r\n", b"5\r\nhello\r\n0\r\n\n", b"0\r\nnot a field\r\n\r\n"):
        with pytest.raises(HttpError) as info:
            response_framer("GET").receive(head + bad)
        assert info.value.status == 400
    # The app's own trailers may name anything: only requests are checked for that.
    ok = b"0\r\nContent-Length: 0\r\n\r\n"
    assert normalise(response_framer("GET").receive(head + ok))[1:] == [ok, MESSAGE_END]


# -- Transfer-Encoding and Content-Length --------------------------------------------------------


@pytest.mark.parametrize(
    "value", [b"chunked", b"Chunked", b"CHUNKED", b" chunked ", b"chunked  ", b"cHuNkEd"]
)
def test_one_transfer_encoding_chunked_is_accepted(value):
    data = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:" + value + b"\r\n\r\n0\r\n\r\n"
    assert frame_all(data)[1:] == [b"0\r\n\r\n", MESSAGE_END]


TE_NOT_IMPLEMENTED = {
    "identity, chunked": b"Transfer-Encoding: identity, chunked\r\n",
    ",chunked": b"Transfer-Encoding: ,chunked\r\n",
    "chunked,": b"Transfer-Encoding: chunked,\r\n",
    "chunked, chunked": b"Transfer-Encoding: chunked, chunked\r\n",
    "gzip, chunked": b"Transfer-Encoding: gzip, chunked\r\n",
    "chunked, gzip": b"Transfer-Encoding: chunked, gzip\r\n",
    "gzip": b"Transfer-Encoding: gzip\r\n",
    "xchunked": b"Transfer-Encoding: xchunked\r\n",
    "empty": b"Transfer-Encoding:\r\n",
    "quoted": b'Transfer-Encoding: "chunked"\r\n',
    "two lines": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    "gzip line then chunked line": b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
    "chunked line then gzip line": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
}


@pytest.mark.parametrize("lines", TE_NOT_IMPLEMENTED.values(), ids=TE_NOT_IMPLEMENTED.keys())
def test_other_request_transfer_encodings_are_not_implemented(lines):
    error = reject(b"POST / HTTP/1.1\r\nHost: a\r\n" + lines + b"\r\n0\r\n\r\n")
    assert error.status == 501
    assert "Transfer-Encoding other than exactly one 'chunked'" in error.message


@pytest.mark.parametrize(
    "lines",
    [
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        b"Transfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ],
)
def test_content_length_with_transfer_encoding_is_400(lines):
    error = reject(b"POST / HTTP/1.1\r\nHost: a\r\n" + lines + b"\r\n0\r\n\r\n")
    assert (error.status, error.message) == (400, "both Content-Length and Transfer-Encoding")


@pytest.mark.parametrize(
    "value", [b"+5", b"-5", b"5 5", b"0x5", b"5,5", b"5, 5", b"1e3", b"", b"5.0", b"\xb5"]
)
def test_content_length_must_be_digits(value):
    assert (
        reject(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + value + b"\r\n\r\n").status
        == 400
    )


@pytest.mark.parametrize("value", [b"5", b" 5", b"5 ", b"\t5\t", b"005"])
def test_content_length_with_surrounding_whitespace_is_fine(value):
    data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:" + value + b"\r\n\r\nhello"
    assert frame_all(data)[1:] == [b"hello", MESSAGE_END]


# -- request lines and heads ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"GET  / HTTP/1.1",
        b"GET /  HTTP/1.1",
        b"GET / HTTP/1.1 ",
        b" GET / HTTP/1.1",
        b"GET\t/ HTTP/1.1",
        b"GET /a b HTTP/1.1",
        b"GET / HTTP/1.1\x00",
        b"GET /\x7f HTTP/1.1",
        b"GET /\xff HTTP/1.1",
        b"GET /",
        b"GET / HTTP/11",
    ],
    ids=repr,
)
def test_malformed_request_lines_are_400(line):
    assert reject(line + b"\r\nHost: a\r\n\r\n").status == 400


@pytest.mark.parametrize(
    ("head", "rule"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", "NUL in the request head"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", "bare CR or LF"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\nb: c\r\n\r\n", "bare CR or LF"),
        (b"GET / HTTP/1.1\nHost: a\r\n\r\n", "bare CR or LF"),
        (b"GET / HTTP/1.1\r\nHost: a\n\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n", "bare CR or LF"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", "obs-fold"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", "malformed HTTP head"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", "malformed HTTP head"),
    ],
    ids=repr,
)
def test_control_characters_and_folding_in_heads_are_400(head, rule):
    error = reject(head)
    assert error.status == 400 and rule in error.message, error.message


def test_every_request_needs_exactly_one_host():
    for version in (b"1.1", b"1.0"):
        error = reject(b"GET / HTTP/" + version + b"\r\nAccept: */*\r\n\r\n")
        assert (error.status, error.message) == (400, "no Host header")
    error = reject(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n")
    assert (error.status, error.message) == (400, "more than one Host header")
    # Not only the first request of a connection.
    framer = Http1Framer("request")
    assert len(framer.receive(GET)) == 2
    with pytest.raises(HttpError) as info:
        framer.receive(b"GET /two HTTP/1.1\r\nX-Host: a\r\n\r\n")
    assert info.value.status == 400


def test_host_lookalikes_do_not_count_as_host():
    for name in (b"X-Host", b"Host_", b"Hos_t", b"Host-"):
        assert reject(b"GET / HTTP/1.1\r\n" + name + b": a\r\n\r\n").message == "no Host header"


@pytest.mark.parametrize("name", [b"Authorization", b"Proxy-Authorization"])
def test_two_credentials_lines_are_400(name):
    data = b"GET / HTTP/1.1\r\nHost: a\r\n%s: Basic eDp5\r\n%s: Basic YTpi\r\n\r\n" % (
        name,
        name.lower(),
    )
    error = reject(data)
    assert error.status == 400 and f"more than one {name.decode()} header" in error.message


def test_one_authorization_and_one_proxy_authorization_are_fine():
    data = b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: a\r\nProxy-Authorization: b\r\n\r\n"
    assert header_value(head_of(data), b"authorization") == "a"


# -- absolute-form targets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "host", "path"),
    [
        (b"http://other.example/path", "other.example", b"/path"),
        (b"HTTPS://other.example:8443/p?q=1", "other.example:8443", b"/p?q=1"),
        (b"http://other.example", "other.example", b"/"),
        (b"http://other.example?q", "other.example", b"/?q"),
        (b"http://[::1]:8080/", "[::1]:8080", b"/"),
        (b"http://a.example//x/http://b/", "a.example", b"//x/http://b/"),
    ],
)
def test_absolute_form_routes_by_the_target_authority(target, host, path):
    head = head_of(b"GET " + target + b" HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
    assert (head.host, head.absolute, head.target) == (host, True, target)
    out = forwarded_head(head, "10.0.0.1", "http")
    # Forwarded as a gateway must (RFC 9112 3.2.2): origin-form, Host replaced by the authority.
    assert out.startswith(b"GET " + path + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n")
    assert b"app.localhost" not in out
    assert out.endswith(f"X-Forwarded-Host: {host}\r\n\r\n".encode())


@pytest.mark.parametrize(
    "head",
    [
        b"POST http://b.example/h HTTP/1.0\r\nX: 1\r\nhOsT:  evil.example \r\nY: 2\r\n\r\n",
        b"GET https://b.example HTTP/1.1\r\nHost:\r\n\r\n",
        b"GET http://b.example/x HTTP/1.1\r\nHost: evil\r\nX-Forwarded-Host: evil\r\n\r\n",
    ],
    ids=["spelling-and-place", "empty-host", "forged-forwarded"],
)
def test_the_visitors_host_never_reaches_the_app_beside_an_absolute_target(head):
    out = forwarded_head(head_of(head), "10.0.0.1", "http")
    lines = out.split(b"\r\n")
    assert lines[0].split(b" ")[1][:1] == b"/"
    assert [line for line in lines if line.lower().startswith(b"host:")] == [b"Host: b.example"]
    assert b"evil" not in out
    assert out.count(b"\r\n\r\n") == 1 and out.endswith(b"\r\n\r\n")


def test_origin_and_asterisk_forms_route_by_host():
    for target in (b"/", b"/http://x/", b"*"):
        head = head_of(b"OPTIONS " + target + b" HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
        assert (head.host, head.absolute) == ("app.localhost", False)


@pytest.mark.parametrize(
    ("target", "rule"),
    [
        (b"ftp://other.example/", "scheme"),
        (b"ws://other.example/", "scheme"),
        (b"javascript:alert(1)", "scheme"),
        (b"http:///path", "empty authority"),
        (b"http://", "empty authority"),
        (b"http:other.example", "empty authority"),
        (b"http://user:pw@other.example/", "userinfo"),
        (b"other.example/path", "not origin-form"),
        (b"other.example:80", "scheme"),
        (b"?q", "not origin-form"),
    ],
    ids=repr,
)
def test_bad_absolute_form_targets_are_400(target, rule):
    error = reject(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert error.status == 400 and rule in error.message, error.message


# -- X-Forwarded-* spellings and header lists -----------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        b"X-Forwarded-For",
        b"X_Forwarded_For",
        b"x-forwarded_for",
        b"X_FORWARDED-HOST",
        b"x_forwarded_",
    ],
)
def test_every_spelling_of_x_forwarded_is_dropped(name):
    data = b"GET / HTTP/1.1\r\nHost: a\r\n" + name + b": 6.6.6.6\r\nAccept: */*\r\n\r\n"
    head = head_of(data)
    assert head.has_forwarded
    out = forwarded_head(head, "10.0.0.1", "https")
    assert b"6.6.6.6" not in out
    assert out == (
        b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.1\r\n"
        b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\n\r\n"
    )


def test_forwarded_lookalikes_stay():
    data = (
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwardedness: 1\r\nXForwarded-For: 2\r\n"
        b"Forwarded: for=3\r\nX-Real-IP: 4\r\n\r\n"
    )
    head = head_of(data)
    assert not head.has_forwarded
    assert forwarded_head(head, "10.0.0.1", "http").startswith(data[:-2])


def test_header_list_combines_every_line():
    data = (
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2\r\nAccept: */*\r\n"
        b"x-forwarded-for: ,, 3.3.3.3 ,\t4.4.4.4\t\r\nX-Forwarded-For:\r\n"
        b"X-Forwarded-For:5.5.5.5\r\n\r\n"
    )
    head = head_of(data)
    assert header_list(head, b"x-forwarded-for") == [
        "1.1.1.1",
        "2.2.2.2",
        "3.3.3.3",
        "4.4.4.4",
        "5.5.5.5",
    ]
    assert header_value(head, b"x-forwarded-for") == "1.1.1.1, 2.2.2.2"
    assert header_list(head, b"accept") == ["*/*"]
    assert header_list(head, b"x-absent") == []
    assert header_list(head, b"forwarded-for") == []


# -- unsolicited response bytes -------------------------------------------------------------------

RESPONSE_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def unsolicited(items: list) -> bytes:
    return b"".join(i.data for i in items if isinstance(i, Unsolicited))


def test_bytes_before_any_request_are_unsolicited():
    framer = Http1Framer("response")
    assert framer.receive(RESPONSE_OK) == [Unsolicited(RESPONSE_OK)]
    assert framer.receive(b"more") == [Unsolicited(b"more")]
    assert framer.receive(b"") == []
    assert framer.between_messages and framer.pending_responses == 0
    assert framer.eof() == []


def test_bytes_after_the_last_answer_are_unsolicited_until_a_request_is_sent():
    for pieces in splits(RESPONSE_OK + RESPONSE_OK + b"\r\n"):
        framer = response_framer("GET")
        items = normalise(feed(framer, pieces))
        assert statuses(items) == [200]
        assert body_bytes(items) == b"ok"
        assert unsolicited(items) == RESPONSE_OK + b"\r\n"
    framer.expect_response_to("GET")
    items = normalise(framer.receive(RESPONSE_OK))
    assert statuses(items) == [200] and items[1:] == [b"ok", MESSAGE_END]


@pytest.mark.parametrize(
    ("method", "response"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"),
    ],
)
def test_a_body_after_a_bodiless_answer_is_unsolicited(method, response):
    items = normalise(response_framer(method).receive(response + b"hello"))
    assert items[1:] == [MESSAGE_END, Unsolicited(b"hello")]


def test_interim_responses_keep_the_request_pending():
    framer = response_framer("POST")
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Hints\r\n\r\n" + RESPONSE_OK + b"x"
    items = normalise(framer.receive(data))
    assert statuses(items) == [100, 103, 200]
    assert items[-3:] == [b"ok", MESSAGE_END, Unsolicited(b"x")]


def test_pipelined_answers_are_not_unsolicited_until_all_came():
    data = RESPONSE_OK * 3 + b"HTTP/1.1 200 OK\r\n\r\n"
    for pieces in splits(data):
        items = normalise(feed(response_framer("GET", "GET", "GET"), pieces))
        assert statuses(items) == [200, 200, 200]
        assert unsolicited(items) == b"HTTP/1.1 200 OK\r\n\r\n"


def test_read_until_close_and_upgrades_are_never_unsolicited():
    framer = response_framer("GET")
    data = b"HTTP/1.1 200 OK\r\n\r\nbody" + RESPONSE_OK
    assert framer.receive(data)[1:] == [b"body" + RESPONSE_OK]
    assert framer.eof() == [MESSAGE_END]
    framer = response_framer(("GET", True))
    items = framer.receive(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nxy"
    )
    assert statuses(items) == [101] and items[1:] == [b"xy"] and framer.raw
    assert framer.receive(b"more") == [b"more"]


def test_a_101_to_a_request_that_did_not_ask_is_interim():
    framer = response_framer("GET")
    switching = b"HTTP/1.1 101 Switching\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n"
    items = normalise(framer.receive(switching + RESPONSE_OK + b"z"))
    assert statuses(items) == [101, 200] and items[-1] == Unsolicited(b"z")


def test_a_request_expected_in_the_middle_of_a_response_does_not_cut_it():
    framer = response_framer("GET")
    items = framer.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
    framer.expect_response_to("GET")
    items += framer.receive(b"cd" + RESPONSE_OK)
    assert statuses(items) == [200, 200]
    assert not any(isinstance(i, Unsolicited) for i in items)


def test_an_error_carries_every_byte_no_item_carried():
    """A caller that gives up framing (the response side) can still pass every byte on."""
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    framer = response_framer("GET")
    assert framer.receive(head + b"5\r\nhel") == [ResponseHead(200, head), b"5\r\n", b"hel"]
    assert framer.receive(b"lo\r\n0") == [b"lo\r\n"]  # "0" is held: its line is not complete
    with pytest.raises(HttpError) as info:
        framer.receive(b" \r\n\r\n")
    assert info.value.unframed == b"0 \r\n\r\n"
    # Items completed in the failing read are not returned either: their bytes are included.
    with pytest.raises(HttpError) as info:
        response_framer("GET", "GET").receive(RESPONSE_OK + b"HTTP/1.1 abc\r\n\r\n")
    assert info.value.unframed == RESPONSE_OK + b"HTTP/1.1 abc\r\n\r\n"
