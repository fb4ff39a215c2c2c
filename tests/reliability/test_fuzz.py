"""Hypothesis fuzzing of a live relay: random and mutated HTTP requests on its public port, and
random, malformed and hostile frames from a rogue agent on its agents' port.

The relay, a good agent (tunnel ``good``) and the test app run on a loop in a thread of their
own (tests/reliability/threaded.py), which records every exception that escapes into the loop
and every ERROR log line. For each example:

* visitors: the bytes are sent (in pieces), then the visitor half-closes. Within 2 s the relay
  must have answered and closed, or just closed; whatever it answered itself (an
  ``X-Molehill-Error`` page) is a 4xx/5xx; and a well-formed request on another connection
  still gets through;
* rogue agent: after its messages, a PING must be answered with a PONG or the connection must be
  closed by the relay, within 2 s; a visitor of the rogue tunnel is never left hanging; the
  good tunnel answers requests all along (a thread keeps sending them) and afterwards;
* always: nothing escaped into the loop, nothing was logged at ERROR, and once the examples'
  connections are gone the relay holds no visitor connection, stream or agent session for them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import re
import socket
import time

import msgpack
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect as ws_connect

from relay.wire import codec as p
from tests.reliability.threaded import GOOD, ThreadedStack, background_traffic, read_until_closed

EXAMPLE_TIMEOUT = 2.0
# The same examples on every run, so CI is reproducible, and no shrinking (a failing example
# may wait out its timeouts hundreds of times while it shrinks): the first failure is reported
# as found. By hand: MOLEHILL_FUZZ_RANDOM=1 explores new examples, MOLEHILL_FUZZ_SHRINK=1
# shrinks failures, MOLEHILL_FUZZ_EXAMPLES sets how many.
FUZZ = settings(
    max_examples=int(os.environ.get("MOLEHILL_FUZZ_EXAMPLES", "200")),
    deadline=None,
    derandomize=os.environ.get("MOLEHILL_FUZZ_RANDOM") != "1",
    phases=[Phase.explicit, Phase.reuse, Phase.generate]
    + ([Phase.shrink] if os.environ.get("MOLEHILL_FUZZ_SHRINK") == "1" else []),
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def stack():
    with ThreadedStack(lease=0.5, hello_timeout=1.0, head_timeout=5.0) as running:
        yield running


@pytest.fixture(autouse=True)
def healthy_before_and_after(stack):
    stack.good_request()
    stack.start_example()
    yield
    stack.end_example()


# -- visitors: random and mutated HTTP ------------------------------------------------------------

CRLF = st.sampled_from(["\r\n"] * 8 + ["\n", "\r", "\r\r\n", "\n\r"])
METHODS = st.sampled_from(
    ["GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "PRI", "get"]
) | st.text(alphabet=st.characters(codec="latin-1"), max_size=8)
TARGETS = st.sampled_from(
    [
        "/",
        "/echo",
        "/echo/a?b=c",
        "/status/404",
        "/status/204",
        "/download?size=70000",
        "/upload",
        "/ws",
        "/sse?n=2&interval=0.01",
        "*",
        "http://good.localhost/echo",
        "",
        "/%00",
        "//",
        "/" + "a" * 9000,
    ]
) | st.text(alphabet=st.characters(codec="latin-1"), max_size=20)
VERSIONS = st.sampled_from(
    ["HTTP/1.1"] * 6 + ["HTTP/1.0", "HTTP/0.9", "HTTP/2.0", "http/1.1", "HTTP/1.1 x", "", "HTTP/9"]
)
HOSTS = st.sampled_from(
    [
        "good.localhost",
        "good.localhost:1",
        "GOOD.LOCALHOST",
        "good.localhost.",
        "nosuch.localhost",
        "localhost",
        "[::1]:80",
        "good.localhost:99999999",
        "-bad-.localhost",
        "x" * 70 + ".localhost",
        "good.localhost, other.localhost",
        "",
    ]
) | st.text(alphabet=st.characters(codec="latin-1"), max_size=30)
HEADER_NAMES = st.sampled_from(
    [
        "Content-Length",
        "Transfer-Encoding",
        "Host",
        "Expect",
        "Upgrade",
        "Connection",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "X-Forwarded-For",
        "X-Forwarded-Host",
        "Accept",
        "Content-Length ",
        " Transfer-Encoding",
        "Transfer-Encoding\x0b",
    ]
) | st.text(alphabet=st.characters(codec="latin-1"), min_size=0, max_size=12)
HEADER_VALUES = st.sampled_from(
    [
        "chunked",
        "gzip, chunked",
        "chunked, identity",
        "Chunked",
        " chunked",
        "0",
        "5",
        "-1",
        "1e3",
        "0x10",
        "+5",
        "99999999999999999999",
        "100-continue",
        "websocket",
        "Upgrade",
        "keep-alive",
        "close",
        "dGhlIHNhbXBsZSBub25jZQ==",
        "13",
        "text/html",
        "1.2.3.4",
    ]
) | st.text(alphabet=st.characters(codec="latin-1"), max_size=40)


@st.composite
def chunked_body(draw) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        data = draw(st.text(alphabet="abc\r\n", max_size=20))
        size = draw(st.sampled_from([len(data), len(data) + 1, max(len(data) - 1, 0)]))
        size_text = draw(st.sampled_from([f"{size:x}", f"{size:X}", f"{size:x};ext=1", f" {size}"]))
        parts.append(f"{size_text}\r\n{data}\r\n")
    parts.append(draw(st.sampled_from(["0\r\n\r\n", "0\r\nTrailer: x\r\n\r\n", "0\r\n", ""])))
    return "".join(parts)


CLEAN_HEADERS = st.sampled_from(
    [
        ("Accept", "text/html"),
        ("Connection", "keep-alive"),
        ("Connection", "close"),
        ("Expect", "100-continue"),
        ("X-Forwarded-For", "1.2.3.4"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
        ("Transfer-Encoding", "chunked"),
    ]
)


@st.composite
def http_request(draw, wild: bool = True) -> bytes:
    """A request head and body; ``wild`` draws every part from odd values too."""
    if wild:
        eol, method, target, version = draw(CRLF), draw(METHODS), draw(TARGETS), draw(VERSIONS)
        host, header = HOSTS, st.tuples(HEADER_NAMES, HEADER_VALUES)
    else:
        eol, version = "\r\n", draw(st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]))
        method = draw(st.sampled_from(["GET", "POST", "PUT", "HEAD", "DELETE"]))
        target = draw(TARGETS.filter(lambda t: t.startswith("/") and t.isascii() and " " not in t))
        host = st.sampled_from(["good.localhost", "good.localhost:1", "nosuch.localhost", "x"])
        header = CLEAN_HEADERS
    lines = [f"{method} {target} {version}"]
    if draw(st.integers(0, 9)) > 0:  # now and then no Host at all
        lines.append(f"Host: {draw(host)}")
    for _ in range(draw(st.integers(0, 4))):
        lines.append("{}: {}".format(*draw(header)))
    body = draw(st.one_of(st.just(""), chunked_body(), st.text(max_size=50)))
    if body and draw(st.booleans()):
        lines.append(f"Content-Length: {len(body.encode())}")
    text = eol.join(lines) + eol + eol + body
    return text.encode("utf-8", "surrogatepass")


def mutate(data: bytes, rnd: random.Random, count: int) -> bytes:
    """Flip, insert, delete, duplicate and truncate bytes, ``count`` times."""
    buf = bytearray(data)
    specials = b"\r\n\x00 :\t\x7f\xff;,"
    for _ in range(count):
        if not buf:
            buf += bytes([rnd.randrange(256)])
            continue
        at = rnd.randrange(len(buf))
        action = rnd.randrange(5)
        if action == 0:
            buf[at] = rnd.choice([rnd.randrange(256), *specials])
        elif action == 1:
            buf[at:at] = bytes([rnd.choice(specials)])
        elif action == 2:
            del buf[at : at + rnd.randint(1, 8)]
        elif action == 3:
            end = min(len(buf), at + rnd.randint(1, 40))
            buf[at:at] = buf[at:end]
        else:
            del buf[at:]
    return bytes(buf)


@st.composite
def visitor_bytes(draw) -> bytes:
    kind = draw(st.sampled_from(["clean", "wild", "mutated", "pipelined", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=600))
    if kind == "pipelined":
        wild = st.booleans().flatmap(lambda w: http_request(wild=w))
        return b"".join(draw(st.lists(wild, min_size=2, max_size=3)))
    data = draw(http_request(wild=kind == "wild"))
    if kind == "mutated":
        data = mutate(data, random.Random(draw(st.integers(0, 2**32))), draw(st.integers(1, 6)))
    return data


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for point in [*points, len(data)]:
        if point > last:
            out.append(data[last:point])
            last = point
    return out


RESPONSE_HEAD = re.compile(rb"HTTP/\d\.\d (\d{3})[^\r\n]*\r\n((?:[^\r\n]+\r\n)*)\r\n")


def visit(stack: ThreadedStack, data: bytes, cuts: list[int]) -> bytes:
    """Send ``data`` in pieces, half-close, return everything until the relay closes."""
    with stack.connect(EXAMPLE_TIMEOUT) as sock:
        with contextlib.suppress(OSError):  # the relay may close before everything is sent
            for piece in pieces(data, cuts):
                sock.sendall(piece)
                time.sleep(0.001)
            sock.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        got = read_until_closed(sock, EXAMPLE_TIMEOUT)
        assert time.monotonic() - started < EXAMPLE_TIMEOUT
    return got


def check_answer(got: bytes) -> None:
    if not got:
        return  # closed without a word: allowed
    # The relay's own pages are HTTP/1.1; the app answers in the version it was asked in.
    assert got.startswith(b"HTTP/"), got[:200]
    for head in RESPONSE_HEAD.finditer(got):
        if b"x-molehill-error:" in head.group(2).lower():
            assert 400 <= int(head.group(1)) < 600, head.group(0)


def test_random_and_mutated_requests_get_an_answer_or_a_close_never_a_hang(stack):
    @FUZZ
    @given(data=visitor_bytes(), cuts=st.lists(st.integers(0, 10_000), max_size=3))
    def run(data: bytes, cuts: list[int]) -> None:
        stack.start_example()
        check_answer(visit(stack, data, cuts))
        stack.end_example()

    run()


@pytest.mark.parametrize("version", ["HTTP/0.9", "HTTP/2.0"])
def test_request_versions_other_than_1x_are_refused_by_the_relay(stack, version):
    """Found by the fuzzer: ``GET / HTTP/0.9`` with a Host header reached the app."""
    got = visit(stack, f"GET /echo {version}\r\nHost: good.localhost\r\n\r\n".encode(), [])
    assert got.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 505 ")), got[:80]
    assert b"X-Molehill-Error" in got


def test_requests_to_the_good_tunnel_with_mutated_bodies_and_framing(stack):
    """Well-routed requests (so the bytes reach the agent and the app) with mutated framing."""

    @FUZZ
    @given(
        method=st.sampled_from(["POST", "PUT", "GET"]),
        path=st.sampled_from(["/echo", "/upload", "/status/200", "/download?size=300000"]),
        headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=4),
        body=st.one_of(chunked_body(), st.binary(max_size=3000).map(lambda b: b.hex())),
        flips=st.integers(0, 4),
        seed=st.integers(0, 2**32),
        cuts=st.lists(st.integers(0, 10_000), max_size=4),
    )
    def run(method, path, headers, body, flips, seed, cuts) -> None:
        stack.start_example()
        head = f"{method} {path} HTTP/1.1\r\nHost: good.localhost\r\n"
        tail = "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n" + body
        rest = tail.encode("utf-8", "surrogatepass")
        if flips:
            rest = mutate(rest, random.Random(seed), flips)
        check_answer(visit(stack, head.encode() + rest, cuts))
        stack.end_example()

    run()


# -- a rogue agent: random and hostile frames ------------------------------------------------------

INTS = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from([0, 1, 2, 3, 7, 2**31 - 1, 2**31, 2**32, 2**63, -1, p.MAX_WINDOW]),
)
TEXT = st.one_of(st.text(max_size=20), st.just("x" * (p.MAX_TEXT + 1)))
VALUES = st.recursive(
    st.none() | st.booleans() | INTS | st.floats() | TEXT | st.binary(max_size=64),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
STREAMS = st.sampled_from([0, 1, 2, 3, 99, 2**31 - 1, 2**31, -1]) | st.integers(0, 2**32)


@st.composite
def typed_frame(draw) -> bytes:
    """A frame of a real type with plausible, out-of-range or wrongly typed fields."""
    sid = draw(STREAMS)
    kind = draw(st.sampled_from(range(1, 12)))
    if kind == p.DATA:
        fields: list = [draw(st.binary(max_size=draw(st.sampled_from([16, 70_000, 300_000]))))]
    elif kind == p.CREDIT:
        fields = [draw(INTS)]
    elif kind == p.HELLO:
        fields = [
            draw(st.sampled_from([p.VERSION, p.VERSION + 1, 0])),
            draw(st.sampled_from(["", "rogue", "rogue2", GOOD, "Bad_Name", "x" * 64])),
            draw(st.sampled_from(["", "token"])),
            draw(st.sampled_from(["", "resume"])),
            draw(st.sampled_from([p.DEFAULT_WINDOW, 1024, 10, p.MAX_WINDOW, 2**40])),
            draw(st.dictionaries(st.sampled_from(["takeover", "allow", "x"]), VALUES, max_size=2)),
        ]
    else:
        fields = draw(st.lists(VALUES, max_size=3))
    if draw(st.integers(0, 9)) == 0:
        fields = draw(st.lists(VALUES, max_size=4))  # wrong arity or types
    return msgpack.packb([kind, sid, *fields], use_bin_type=True)


OPENED = st.integers(1, 3)  # streams a visitor of the rogue tunnel may have opened
SMALL = st.integers(0, 2**63)
VALID = {  # valid frames, by type
    p.DATA: st.builds(p.Data, OPENED, st.binary(max_size=2000))
    | st.builds(p.Data, OPENED, st.just(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")),
    p.CREDIT: st.builds(p.Credit, OPENED, st.integers(1, 2**20)),
    p.END: st.builds(p.End, OPENED),
    p.RESET: st.builds(p.Reset, OPENED, st.text(max_size=10), st.text(max_size=30)),
    p.PING: st.builds(p.Ping, SMALL),
    p.PONG: st.builds(p.Pong, SMALL),
}


@st.composite
def rogue_message(draw) -> bytes | str:
    kind = draw(st.sampled_from(["frames"] * 12 + ["object", "bytes", "text", "empty"]))
    if kind == "frames":
        valid = st.one_of(*VALID.values()).map(p.encode)
        frame = st.one_of(valid, valid, valid, typed_frame())
        return p.batch(draw(st.lists(frame, min_size=1, max_size=6)))
    if kind == "object":
        return msgpack.packb(draw(VALUES), use_bin_type=True)
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "text":
        return draw(st.text(max_size=50))
    return b""


STEPS = ("head", "bytes", "end", "credit", "reset", "ping")


def story_frame(sid: int, step: str) -> p.Frame:
    """A valid frame for an open stream: what an agent (buggy or not) might send."""
    if step == "head":
        return p.Data(sid, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    if step == "bytes":
        return p.Data(sid, b"hello")
    if step == "end":
        return p.End(sid)
    if step == "credit":
        return p.Credit(sid, 1000)
    if step == "reset":
        return p.Reset(sid, "local_error", "the app went away")
    return p.Ping(sid)


def hello(name: str = "rogue") -> bytes:
    return p.encode_message(p.Hello(p.VERSION, name, "", "", p.DEFAULT_WINDOW))


def alive_or_closed(ws, timeout: float = EXAMPLE_TIMEOUT) -> bool:
    """Ping the relay: True if it answers, False if it closed the connection. Never hangs."""
    payload = 424242
    with contextlib.suppress(ConnectionClosed):
        ws.send(p.encode_message(p.Ping(payload)))
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "the relay neither answered a PING nor closed the connection"
        try:
            message = ws.recv(timeout=left)
        except ConnectionClosed:
            return False
        except TimeoutError:
            continue
        if isinstance(message, bytes):
            frames = p.decode_all(message)  # what the relay sends must always decode
            if any(isinstance(f, p.Pong) and f.payload == payload for f in frames):
                return True


def rogue_example(
    stack: ThreadedStack,
    name: str | None,
    visitors: int,
    story: list[tuple[int, str]],
    messages: list[bytes | str],
) -> None:
    """One rogue agent: HELLO as ``name`` (None: no HELLO), ``visitors`` visitors of its tunnel,
    the ``story`` (valid frames on their streams), then ``messages``; then the checks."""
    relay = stack.relay
    stack.start_example()
    opened: list[socket.socket] = []
    try:
        with ws_connect(stack.agents_url, open_timeout=2, close_timeout=1, max_size=None) as ws:
            if name is not None:
                ws.send(hello(name))
            if name is not None and name.startswith("fresh") and visitors:
                stack.wait_until(lambda: name in relay.tunnels, what="the rogue tunnel")
                request = f"GET / HTTP/1.1\r\nHost: {name}.localhost\r\n\r\n".encode()
                for _ in range(visitors):
                    opened.append(stack.connect())
                    opened[-1].sendall(request)
                session = relay.tunnels[name]
                stack.wait_until(lambda: len(session.streams) == visitors, what="the streams")
                for n, step in story:
                    with contextlib.suppress(ConnectionClosed):
                        ws.send(p.encode_message(story_frame((n - 1) % visitors + 1, step)))
            for message in messages:
                with contextlib.suppress(ConnectionClosed):
                    ws.send(message)
            alive_or_closed(ws)
        for visitor in opened:
            # The rogue tunnel is gone; its visitors see the end (after whatever bytes the rogue
            # sent them), never a hang.
            read_until_closed(visitor, EXAMPLE_TIMEOUT)
    except InvalidHandshake as exc:
        raise AssertionError(f"the relay refused a websocket handshake: {exc!r}") from exc
    finally:
        for visitor in opened:
            visitor.close()
    stack.end_example()


def test_rogue_agent_random_messages_cost_only_its_own_link(stack):
    fresh = itertools.count()

    @FUZZ
    @given(
        name=st.sampled_from([None, "fresh", "fresh", "rogue", GOOD]),
        visitors=st.integers(0, 3),
        messages=st.lists(rogue_message(), min_size=1, max_size=5),
    )
    def run(name: str | None, visitors: int, messages: list[bytes | str]) -> None:
        if name == "fresh":  # a name nobody holds, so the HELLO is accepted
            name = f"fresh{next(fresh)}"
        rogue_example(stack, name, visitors, [], messages)

    with background_traffic(stack) as failures:
        run()
    assert not failures, failures[:5]


def test_rogue_agent_stream_stories_cost_only_its_own_link(stack):
    """Valid frames on streams that really are open (answers, ends, resets in random order),
    then perhaps a few random messages."""
    fresh = itertools.count()

    @FUZZ
    @given(
        visitors=st.integers(1, 3),
        story=st.lists(st.tuples(st.integers(1, 3), st.sampled_from(STEPS)), min_size=1),
        messages=st.lists(rogue_message(), max_size=2),
    )
    def run(visitors: int, story: list[tuple[int, str]], messages: list[bytes | str]) -> None:
        rogue_example(stack, f"fresh{next(fresh)}", visitors, story[:8], messages)

    with background_traffic(stack) as failures:
        run()
    assert not failures, failures[:5]
