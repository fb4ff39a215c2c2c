"""Differential test: whatever the relay's request framer accepts, h11 frames the same way.

The relay forwards a request stream it framed itself; the app's server frames it again. If the two
disagree on where a request or its body ends, a visitor can smuggle a request past the relay's
checks. h11 is a strict reference parser: for every stream (hostile ones included) that
:class:`Http1Framer` accepts, up to the point where it refuses, h11 must see the same requests
(method, target, Host, body) in the bytes the relay would forward, and must not refuse them. An
absolute-form target reaches the app origin-form, with its authority as the Host.

What h11 is fed is what the relay sends on: each head as :func:`forwarded_head` rewrites it and
the body bytes as the framer passed them. The empty lines the framer skips before a request line
(RFC 9112 2.2) are never forwarded, so h11 (which refuses them) does not see them either.

Exclusions, where h11 and the relay legitimately part ways:

* After a request that ends its connection (``Connection: close``, or HTTP/1.0 without
  keep-alive), h11 stops reading while the framer goes on framing. A server closes there and
  never reads what follows, so comparison stops at the first such request.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.http.framing import (
    MESSAGE_END,
    Http1Framer,
    HttpError,
    Item,
    RequestHead,
    forwarded_head,
    header_list,
)

CLIENT = "192.0.2.1"
SETTINGS = settings(
    deadline=None,
    derandomize=True,  # the same examples on every run: CI must not flake
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- generating request streams -------------------------------------------------------------------

CRLF = b"\r\n"
LINE_ENDS_HOSTILE = [b"\n", b"\r", b"\r\r\n", b"\n\r"]

METHODS = [b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH"]
METHODS_HOSTILE = [b"get", b"CONNECT", b"G\x00T", b"PRI", b"GET ", b"FOO"]
TARGETS = [
    b"/",
    b"/a?b=1",
    b"/x/y;z",
    b"/%41%20",
    b"/~user/a.b-c_d!$&'()*+,;=:@",
    b"*",
    b"http://b.localhost/p",
    b"https://b.localhost:8443",
    b"HTTP://B.localhost/?q",
]
TARGETS_HOSTILE = [
    b"/a b",
    b"/\x7f",
    b"/\x80",
    b"ftp://x/",
    b"http:///x",
    b"http://u@b.localhost/",
    b"//b.localhost/x",
    b'/?q="<>',
    b"",
    b"/\t",
]
VERSIONS = [b"HTTP/1.1"] * 5 + [b"HTTP/1.0"]
VERSIONS_HOSTILE = [b"HTTP/2.0", b"HTTP/1.1 ", b"http/1.1", b"HTTP/1.10", b"HTTP/0.9"]
HOSTS = [b"Host: b.localhost", b"host:b.localhost", b"HOST:  b.localhost:8080 ", b"Host:"]
HOSTS_HOSTILE = [b"Host: a b", b"Host_: x", b"Ho st: x", b"Host : x", b"Host: \x00"]
HEADERS = [
    b"Accept: */*",
    b"X-A: 1",
    b"X-Empty:",
    b"Cookie: a=b; c=d",
    b"X-Obs: \x80\xff",
    b"X-Tab: a\tb",
    b"X_Under: 1",
    b"x-forwarded-for: 1.2.3.4",
    b"X_Forwarded_For: 6.6.6.6",
    b"X-Forwarded-Host: evil",
    b"x-forwarded_proto: https",
    b"Forwarded: for=1.2.3.4",
    b"Authorization: Basic eDp5",
    b"Proxy-Authorization: x",
    b"Connection: keep-alive",
    b"Connection: close",
    b"Connection: Upgrade",
    b"Upgrade: websocket",
    b"Expect: 100-continue",
    b"Trailer: X-T",
]
HEADERS_HOSTILE = [
    b"X: a\x00b",
    b"X: a\rb",
    b"X: a\nb",
    b" folded",
    b"\tfolded",
    b"X : y",
    b"X\x01: y",
    b"NoColon",
    b"X: \x0b",
    b": v",
    b"Authorization: Basic YTpi",
    b"Content-Length: 0",
    b"Transfer-Encoding: chunked",
]
TE = [b"Transfer-Encoding: chunked"] * 6 + [
    b"transfer-encoding:CHUNKED",
    b"TRANSFER-ENCODING: Chunked ",
]
TE_HOSTILE = [
    b"Transfer-Encoding: identity, chunked",
    b"Transfer-Encoding: ,chunked",
    b"Transfer-Encoding: chunked, chunked",
    b"Transfer-Encoding: gzip",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
    b"Transfer-Encoding: \tchunked",
    b"Transfer-Encoding: chunked\r\nContent-Length: 3",
    b"Transfer-Encoding: xchunked",
]
SIZE_FORMS = ["%x"] * 6 + ["%X", "0%x", "000%X"]
SIZE_FORMS_HOSTILE = [" %x", "%x ", "%x\t", "0x%x", "0000000000000000%x", "+%x"]
EXTS = [b""] * 6 + [b";a", b";a=b", b';a="x;y"', b';q="\\"\x80"', b";a;b=c"]
EXTS_HOSTILE = [b";a=", b"; a", b" ;a", b";a=\x00", b";a\nb", b";=x", b";a=b c", b'";"', b";\r"]
CRLFS = [CRLF]
LAST_CHUNK = [b"0"] * 4 + [b"000"]
LAST_CHUNK_HOSTILE = [b"0 ", b"0" * 17, b"0x0"]
AFTER_DATA_HOSTILE = [b"\n", b"", b"X\r\n", b"\r", b"\r\n\r\n"]
TRAILERS = [b"X-T: v", b"x_t:v", b"X-Empty:", b"X-Obs:\t\x80 "]
TRAILERS_HOSTILE = [
    b"Bad Line",
    b"GET /smuggled HTTP/1.1",
    b" fold",
    b"Content-Length: 3",
    b"X: \x01",
    b"Host: evil",
    b"X_Forwarded_For: 6.6.6.6",
    b"",
]


# What a hostile stream may get wrong: one or two of these per stream, so that the requests
# before and around the flaw are valid and the framer has something to accept.
FLAWS = (
    "line ends",
    "method",
    "target",
    "version",
    "host",
    "header",
    "content-length",
    "transfer-encoding",
    "chunk size",
    "chunk extension",
    "chunk end",
    "trailer",
    "duplicates",
    "mutation",
)
Flaws = frozenset[str]
BODY_FLAWS = frozenset(
    {"content-length", "transfer-encoding", "chunk size", "chunk extension", "chunk end", "trailer"}
)


_STRATEGIES: dict[object, st.SearchStrategy] = {}


def _cached(key: object, make) -> st.SearchStrategy:
    # Building a strategy per draw costs more than the test itself: build each once.
    strategy = _STRATEGIES.get(key)
    if strategy is None:
        strategy = _STRATEGIES[key] = make()
    return strategy


def pick(draw: st.DrawFn, common: list, hostile: list, allow: bool, odds: int = 4):
    """Usually a common choice; one time in ``odds`` a hostile one, when allowed.

    The lists are module constants: they are cached by identity.
    """
    if allow and draw(_cached(odds, lambda: st.integers(0, odds - 1))) == 0:
        return draw(_cached(id(hostile), lambda: st.sampled_from(hostile)))
    if len(common) == 1:
        return common[0]
    return draw(_cached(id(common), lambda: st.sampled_from(common)))


@st.composite
def chunked_body(draw: st.DrawFn, flaws: Flaws) -> bytes:
    def end() -> bytes:
        return pick(draw, CRLFS, LINE_ENDS_HOSTILE, "line ends" in flaws, 8)

    parts = []
    for data in draw(st.lists(st.binary(min_size=1, max_size=24), max_size=4)):
        size = pick(draw, SIZE_FORMS, SIZE_FORMS_HOSTILE, "chunk size" in flaws) % len(data)
        ext = pick(draw, EXTS, EXTS_HOSTILE, "chunk extension" in flaws)
        after = pick(draw, CRLFS, AFTER_DATA_HOSTILE, "chunk end" in flaws)
        parts.append(size.encode() + ext + end() + data + after)
    last = pick(draw, LAST_CHUNK, LAST_CHUNK_HOSTILE, "chunk size" in flaws)
    parts.append(last + pick(draw, EXTS, EXTS_HOSTILE, "chunk extension" in flaws) + end())
    for _ in range(draw(st.integers(0, 2))):
        parts.append(pick(draw, TRAILERS, TRAILERS_HOSTILE, "trailer" in flaws) + end())
    parts.append(end())
    return b"".join(parts)


@st.composite
def request(draw: st.DrawFn, flaws: Flaws) -> bytes:
    method = pick(draw, METHODS, METHODS_HOSTILE, "method" in flaws)
    target = pick(draw, TARGETS, TARGETS_HOSTILE, "target" in flaws)
    version = pick(draw, VERSIONS, VERSIONS_HOSTILE, "version" in flaws)
    duplicates = "duplicates" in flaws
    lines = [draw(st.lists(st.sampled_from(HEADERS), max_size=3, unique=not duplicates))]
    hosts = [pick(draw, HOSTS, HOSTS_HOSTILE, "host" in flaws)]
    if duplicates and draw(st.booleans()):
        hosts = draw(st.sampled_from([[], hosts * 2]))
    lines.append(hosts)
    body = b""
    framing = draw(st.sampled_from(["none", "none", "length", "chunked"]))
    if flaws & BODY_FLAWS:  # a flaw in a body needs that body
        framing = "length" if "content-length" in flaws else "chunked"
    if version == b"HTTP/1.0" and framing == "chunked" and "version" not in flaws:
        framing = "length"
    if framing == "length":
        body = draw(st.binary(max_size=30))
        length = str(len(body)).encode()
        if "content-length" in flaws and draw(st.booleans()):
            length = draw(
                st.sampled_from(
                    [
                        b"+" + length,
                        length + b", " + length,
                        b"%d" % (len(body) + 1),
                        length + b"\r\nContent-Length: " + length,
                        b"0x1",
                        b"-1",
                        b"1 0",
                    ]
                )
            )
        lines.append([b"Content-Length: " + length])
    elif framing == "chunked":
        lines.append([pick(draw, TE, TE_HOSTILE, "transfer-encoding" in flaws)])
        body = draw(chunked_body(flaws))
    if "header" in flaws and draw(st.booleans()):
        lines.append([draw(st.sampled_from(HEADERS_HOSTILE))])
    header_lines = [line for group in draw(st.permutations(lines)) for line in group]

    def end() -> bytes:
        return pick(draw, CRLFS, LINE_ENDS_HOSTILE, "line ends" in flaws, 12)

    head = method + b" " + target + b" " + version + end()
    head += b"".join(line + end() for line in header_lines) + end()
    return head + body


MUTATIONS = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b";", b"0", b"a", b":", b",", b"\r\n\r\n"]


@st.composite
def stream(draw: st.DrawFn, hostile: bool) -> bytes:
    flaws: Flaws = frozenset()
    if hostile:
        flaws = frozenset(draw(st.lists(st.sampled_from(FLAWS), min_size=1, max_size=2)))
    valid = draw(st.lists(request(frozenset()), max_size=2))  # accepted before any flaw
    flawed = draw(st.lists(request(flaws), min_size=1, max_size=2))
    data = b"".join(valid + flawed)
    if draw(st.integers(0, 5)) == 0:
        data = draw(st.sampled_from([CRLF, b"\n", CRLF * 2])) + data
    if "mutation" not in flaws:
        return data
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(buf)))
        op = draw(st.integers(0, 2))
        if op == 0:
            buf[at:at] = draw(st.sampled_from(MUTATIONS))
        elif op == 1:
            del buf[at : at + 1]
        else:
            buf[at : at + 1] = bytes([draw(st.integers(0, 255))])
    return bytes(buf)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(marks)]


# -- running both parsers -------------------------------------------------------------------------


@dataclass
class Seen:
    """One request as a parser framed it."""

    method: bytes
    target: bytes
    host: bytes | None
    body: bytes = b""
    ended: bool = False
    raw_body: bytearray = field(default_factory=bytearray)
    chunked: bool = False


def frame(pieces: list[bytes]) -> tuple[list[Item], HttpError | None]:
    """The items the relay would act on: those of every read the framer accepted."""
    framer = Http1Framer("request")
    items: list[Item] = []
    try:
        for piece in pieces:
            items.extend(framer.receive(piece))
            if framer.waiting_for_upgrade:  # the app said no (h11 below answers 200 too)
                items.extend(framer.upgrade_refused())
    except HttpError as exc:
        return items, exc
    return items, None


SCHEME_AUTHORITY = re.compile(rb"[A-Za-z][-+.0-9A-Za-z]*://[^/?#]*")
HEX_LINE = re.compile(rb"([0-9A-Fa-f]+)(;[^\r\n]*)?")


def dechunk(raw: bytes) -> bytes:
    """The data of a chunked body as the framer passed it on: whole lines, maybe cut short."""
    out = bytearray()
    pos = 0
    while pos < len(raw):
        eol = raw.find(CRLF, pos)
        assert eol != -1, f"the framer passed on part of a chunk line: {raw[pos:]!r}"
        match = HEX_LINE.fullmatch(raw, pos, eol)
        assert match is not None, raw[pos:eol]
        size = int(match.group(1), 16)
        pos = eol + 2
        if size == 0:
            while pos < len(raw):  # trailers: whole lines only
                eol = raw.find(CRLF, pos)
                assert eol != -1, raw[pos:]
                pos = eol + 2
            break
        out += raw[pos : pos + size]
        pos += size
        tail = raw[pos : pos + 2]
        assert tail == CRLF[: len(tail)], tail
        pos += 2
    return bytes(out)


def framer_requests(items: list[Item]) -> list[Seen]:
    seen: list[Seen] = []
    for item in items:
        if isinstance(item, RequestHead):
            host = (item.host or "").encode("latin-1")
            target = item.target
            if item.absolute:  # forwarded origin-form, with the authority as Host
                rest = target[SCHEME_AUTHORITY.match(target).end() :]  # type: ignore[union-attr]
                target = rest if rest[:1] == b"/" else b"/" + rest
            chunked = bool(header_list(item, b"transfer-encoding"))
            seen.append(Seen(item.method.encode(), target, host, chunked=chunked))
        elif item is MESSAGE_END:
            seen[-1].ended = True
        else:
            assert type(item) is bytes
            seen[-1].raw_body += item
    for request in seen:
        raw = bytes(request.raw_body)
        request.body = dechunk(raw) if request.chunked else raw
    return seen


def forwarded_bytes(items: list[Item]) -> bytes:
    out = []
    for item in items:
        if isinstance(item, RequestHead):
            out.append(forwarded_head(item, CLIENT, "http"))
        elif type(item) is bytes:
            out.append(item)
    return b"".join(out)


def h11_requests(data: bytes) -> tuple[list[Seen], bool]:
    """What h11, as the app's server, frames in ``data``; True if it stopped at a close."""
    conn = h11.Connection(h11.SERVER)
    if data:  # b"" would tell h11 the connection closed
        conn.receive_data(data)
    seen: list[Seen] = []
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise AssertionError(f"h11 refused what the relay accepted: {exc}") from exc
        if event is h11.NEED_DATA:
            return seen, False
        if isinstance(event, h11.Request):
            hosts = [v for k, v in event.headers if k == b"host"]
            forwarded = [
                (name.lower().replace(b"_", b"-"), value)
                for name, value in event.headers.raw_items()
                if name.lower().replace(b"_", b"-").startswith(b"x-forwarded-")
            ]
            assert [v for k, v in forwarded if k == b"x-forwarded-for"] == [CLIENT.encode()]
            assert len(forwarded) == 3, forwarded  # the relay's own, and only those
            assert len([k for k, _ in event.headers if k == b"authorization"]) <= 1
            seen.append(Seen(event.method, event.target, hosts[0] if hosts else None))
        elif isinstance(event, h11.Data):
            seen[-1].body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            seen[-1].ended = True
            conn.send(h11.Response(status_code=200, headers=[(b"content-length", b"0")]))
            conn.send(h11.EndOfMessage())
            if h11.MUST_CLOSE in (conn.our_state, conn.their_state):
                return seen, True  # see the exclusions in the module docstring
            conn.start_next_cycle()
        else:
            raise AssertionError(f"unexpected h11 event {event!r}")


def check(data: bytes, points: list[int]) -> tuple[int, HttpError | None]:
    items, error = frame(cut(data, points))
    ours = framer_requests(items)
    theirs, closed = h11_requests(forwarded_bytes(items))
    if closed:
        ours = ours[: len(theirs)]
    assert len(ours) == len(theirs), (ours, theirs)
    for mine, h11s in zip(ours, theirs, strict=True):
        assert (mine.method, mine.target) == (h11s.method, h11s.target)
        if mine.host is not None:
            assert mine.host == h11s.host
        assert mine.body == h11s.body, (mine, h11s)
        assert mine.ended == h11s.ended, (mine, h11s)
    return len(ours), error


POINTS = st.lists(st.integers(0, 2000), max_size=5)


@SETTINGS
@given(stream(hostile=False), POINTS)
def test_valid_streams_are_accepted_whole_and_framed_like_h11(data, points):
    count, error = check(data, points)
    assert error is None, error
    assert count >= 1


@settings(SETTINGS, max_examples=300)
@given(stream(hostile=True), POINTS)
def test_hostile_streams_are_framed_like_h11_as_far_as_the_relay_accepts_them(data, points):
    check(data, points)


# A few shapes that must be agreed on, found by hand or by the test above.
KNOWN = [
    b"POST / HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\nGET /smuggled HTTP/1.1\r\nHost: b\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;a\nb\r\nhello\r\n0\r\n\r\nGET /two HTTP/1.1\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: b\n\nGET /smuggled HTTP/1.1\r\nHost: b\r\n\r\n",
    b"\r\n\r\nGET / HTTP/1.1\r\nHost: b\r\n\r\n\r\nGET /two HTTP/1.1\r\nHost: b\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\n\r\nhello"
    b"GET / HTTP/1.1\r\nHost: b\r\n\r\n",
]


def test_known_shapes_at_every_split():
    for data in KNOWN:
        for i in range(len(data) + 1):
            check(data, [i])
