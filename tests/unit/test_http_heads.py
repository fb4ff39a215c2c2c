"""Heads: the fast paths against the full paths (same heads taken, same values, same refusals)."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.http import heads, plain
from relay.http.forwarded import forwarded_head
from relay.http.heads import HttpError

SETTINGS = settings(
    max_examples=3000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

# Mostly valid heads, each part now and then odd: the rules must agree on both kinds.
GOOD_METHODS = ["GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]
ODD_METHODS = ["CONNECT", "TRACE", "FOO", "get", "M-SEARCH", "PURGE"]
GOOD_TARGETS = ["/", "/a?b=1", "/%zz#f?g#", "//x", "/a/b/../c?d=e&f"]
ODD_TARGETS = ["*", "http://x.example/p", "/a b", "/\x7f", "/\x80", "", "a"]
GOOD_NAMES = [
    "Host", "host", "HOST", "Content-Length", "content-length", "Transfer-Encoding",
    "Connection", "Upgrade", "upgrade", "Authorization", "Proxy-Authorization", "authorization-x",
    "X-Forwarded-For", "X_Forwarded_Host", "x-forwarded_proto", "x-forwarded-", "Forwarded",
    "Accept", "X-A", "X-Upgrade-Insecure", "Content-Type",
]  # fmt: skip
ODD_NAMES = ["A b", "", "Ä", "Host ", "Content-Length "]
GOOD_VALUES = [
    "", " ", "x", " x ", "\tx\t", "app.localhost:8080", "0", "00", "5", "12", "243", "chunked",
    "CHUNKED", "gzip, chunked", "chunked, gzip", "gzip", "chunked ", "upgrade", "websocket",
    "Upgrade, keep-alive", "keep-alive", "close", "Basic dTpw", "é", "\x80\xff", "1 2", "+3", "-1",
    "1234567890123456789",
]  # fmt: skip
ODD_VALUES = ["a\x00b", "a\x01b", "\x7f", "a\rb", "a\nb"]
ODD_LINES = ["", " folded", "\tfolded", "no colon", "Host : x", ":empty", "X-A:\x00"]
TOKEN_CHARS = "-!#$%&'*+.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
VISIBLE = "".join(map(chr, range(0x21, 0x7F)))


def _pick(rnd: random.Random, good: list[str], odd: list[str], odds: float = 0.1) -> str:
    return rnd.choice(odd if rnd.random() < odds else good)


def _text(rnd: random.Random, alphabet: str, size: int) -> str:
    return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, size)))


def _lines(rnd: random.Random) -> list[str]:
    lines = []
    for _ in range(rnd.randint(0, 5)):
        if rnd.random() < 0.03:
            lines.append(rnd.choice(ODD_LINES))
            continue
        name = rnd.choice(GOOD_NAMES) if rnd.random() < 0.3 else _text(rnd, TOKEN_CHARS, 8) or "x"
        if rnd.random() < 0.03:
            name = rnd.choice(ODD_NAMES)
        value = (
            rnd.choice(GOOD_VALUES) if rnd.random() < 0.4 else _text(rnd, VISIBLE + " \t\x80", 8)
        )
        if rnd.random() < 0.03:
            value = rnd.choice(ODD_VALUES)
        lines.append(f"{name}:{value}" if value[:1] in ("", " ", "\t") else f"{name}: {value}")
    return lines


def _encode(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _request(rnd: random.Random) -> bytes:
    method = _pick(rnd, GOOD_METHODS, ODD_METHODS)
    target = _pick(rnd, [*GOOD_TARGETS, "/" + _text(rnd, VISIBLE, 6)], ODD_TARGETS)
    version = _pick(rnd, ["1.1", "1.1", "1.0"], ["2.0", "1.2", "0.9"])
    lines = _lines(rnd)
    host = _pick(rnd, ["app.localhost", "x.example:80", " a "], [""])
    if host:
        lines.insert(0 if rnd.random() < 0.8 else rnd.randint(0, len(lines)), f"Host: {host}")
    return _encode([f"{method} {target} HTTP/{version}", *lines])


def _response(rnd: random.Random) -> bytes:
    version = _pick(rnd, ["1.1", "1.0"], ["2.0", "1.2"])
    status = _pick(
        rnd, ["200", "204", "304", "404", "101", "100"], ["099", "600", "000", "20", "2000"]
    )
    reason = _pick(rnd, ["", " ", " OK", " Not Found"], [" \x01", " é\x80", "\tOK"])
    return _encode([f"HTTP/{version} {status}{reason}", *_lines(rnd)])


requests = st.randoms(use_true_random=True).map(_request)
responses = st.randoms(use_true_random=True).map(_response)


@pytest.mark.parametrize("max_headers", [100, 3])
def test_plain_requests_read_as_the_full_rules_read_them(max_headers):
    @SETTINGS
    @given(requests)
    def check(head: bytes) -> None:
        fast = plain.plain_request(head, max_headers)
        if fast is not None:
            assert fast == heads.parse_request(head, max_headers), head

    check()


@pytest.mark.parametrize("max_headers", [100, 3])
def test_plain_responses_read_as_httptools_reads_them(max_headers):
    @SETTINGS
    @given(responses)
    def check(head: bytes) -> None:
        fast = plain.plain_response(head, max_headers)
        if fast is not None:
            status, lowered = heads.parse_response(head, max_headers)
            assert fast == (status, heads.response_body(lowered)), head

    check()


@SETTINGS
@given(requests)
def test_the_observer_reads_what_the_relay_forwards_as_the_relay_framed_it(head: bytes):
    if head.find(b"\r\n\r\n") != len(head) - 4:
        return  # not one head: the framer cuts a head at its first empty line
    try:
        request, body = plain.plain_request(head, 100) or heads.parse_request(head, 100)
    except HttpError:
        return
    forwarded = forwarded_head(request, "192.0.2.1", "http")
    seen = plain.observed_request(forwarded, 100)
    target = request.target
    if request.absolute:  # forwarded origin-form (RFC 9112 3.2.2)
        after = target[target.find(b"//") + 2 :]
        rest = after[len(re.match(rb"[^/?#]*", after).group()) :]  # type: ignore[union-attr]
        target = rest if rest[:1] == b"/" else b"/" + rest
    if seen is not None:
        seen_request, seen_body = seen
        assert (seen_request.method, seen_request.target, seen_request.version, seen_body) == (
            request.method,
            target,
            request.version,
            body,
        )
        assert not request.upgrade


def test_usual_heads_are_plain():
    request, body = plain.plain_request(
        b"GET /a?b HTTP/1.1\r\nHost: app.localhost \r\nX-Forwarded-For: 1.2.3.4\r\n"
        b"Authorization: Basic dTpw\r\nContent-Length: 5\r\n\r\n",
        100,
    )
    assert (request.method, request.target, request.host, request.has_forwarded, body) == (
        "GET",
        b"/a?b",
        "app.localhost",
        True,
        5,
    )
    forwarded = forwarded_head(request, "192.0.2.1", "http")
    seen, body = plain.observed_request(forwarded, 100)
    assert (seen.method, seen.target, seen.version, body) == ("GET", b"/a?b", "1.1", 5)
    assert plain.plain_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", 100) == (200, 3)
    assert plain.plain_response(b"HTTP/1.1 404 \r\n\r\n", 100) == (404, heads.UNTIL_CLOSE)


def test_unusual_heads_are_not_plain():
    get = b"GET / HTTP/1.1\r\nHost: a\r\n"
    for extra in (b"Host: b\r\n", b"Upgrade: websocket\r\n", b"Transfer-Encoding: chunked\r\n"):
        assert plain.plain_request(get + extra + b"\r\n", 100) is None
    assert plain.plain_request(b"GET / HTTP/1.1\r\nAccept: */*\r\nHost: a\r\n\r\n", 100) is None
    two = b"Content-Length: 1\r\nContent-Length: 1\r\n"
    assert plain.plain_request(get + two + b"\r\n", 100) is None
    assert plain.plain_response(b"HTTP/1.1 200 OK\r\n" + two + b"\r\n", 100) is None
    assert plain.plain_response(b"HTTP/1.1 101 Switching\r\n\r\n", 100) is None
