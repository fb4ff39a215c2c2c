"""Attack shapes against the relay's request framer: each refused with its status and rule."""

from __future__ import annotations

import pytest

from relay.http.framing import (
    MESSAGE_END,
    Http1Framer,
    HttpError,
    RequestHead,
    forwarded_head,
    header_list,
)

CHUNKED = b"POST /upload HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"


def refused(data: bytes) -> HttpError:
    """The error, which must be the same however the bytes are split."""
    with pytest.raises(HttpError) as info:
        Http1Framer("request").receive(data)
    whole = info.value
    for cut in range(1, len(data)):
        framer = Http1Framer("request")
        with pytest.raises(HttpError) as info:
            framer.receive(data[:cut])
            framer.receive(data[cut:])
        assert (info.value.status, info.value.message) == (whole.status, whole.message)
    return whole


def accepted(data: bytes) -> list:
    return Http1Framer("request").receive(data)


# Each: the bytes, the status, words of the message that name the rule.
HOSTILE = {
    # h11 (uvicorn) ends the body at "0\r\n\n" and runs /smuggled; we saw a trailer line.
    "lf ends the trailers": (
        CHUNKED + b"5\r\nhello\r\n0\r\n\nGET /smuggled HTTP/1.1\r\nHost: app.localhost\r\n\r\n",
        400,
        "bare LF",
    ),
    "lf ends the last chunk line": (
        CHUNKED + b"0\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.localhost\r\n\r\n",
        400,
        "bare LF",
    ),
    "lf in a chunk extension": (CHUNKED + b"5;a\nb\r\nhello\r\n0\r\n\r\n", 400, "bare LF"),
    "cr in a chunk extension": (CHUNKED + b"5;a\rb\r\nhello\r\n0\r\n\r\n", 400, "bare CR"),
    "nul in a chunk extension": (
        CHUNKED + b"5;a=\x00\r\nhello\r\n0\r\n\r\n",
        400,
        "control character in a chunk extension",
    ),
    "nul in a quoted chunk extension": (
        CHUNKED + b'5;a="\x00"\r\nhello\r\n0\r\n\r\n',
        400,
        "control character in a chunk extension",
    ),
    "request line as a trailer": (
        CHUNKED + b"0\r\nGET /smuggled HTTP/1.1\r\nHost: app.localhost\r\n\r\n",
        400,
        "is not a header field",
    ),
    "folded trailer": (CHUNKED + b"0\r\nX: a\r\n b\r\n\r\n", 400, "is not a header field"),
    "forged x-forwarded-for trailer": (
        CHUNKED + b"0\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n",
        400,
        "not allowed in a trailer",
    ),
    "chunk size with space and tab": (CHUNKED + b"5 \t\r\nhello\r\n0\r\n\r\n", 400, "whitespace"),
    "chunk size with leading space": (CHUNKED + b" 5\r\nhello\r\n0\r\n\r\n", 400, "whitespace"),
    "chunk size 0x": (CHUNKED + b"0x5\r\nhello\r\n0\r\n\r\n", 400, "hex digits only"),
    "chunk size overflow": (
        CHUNKED + b"1" + b"0" * 16 + b"\r\nhello\r\n0\r\n\r\n",
        400,
        "longer than 16 hex digits",
    ),
    "chunk data without crlf": (
        CHUNKED + b"5\r\nhelloGET /smuggled HTTP/1.1\r\n\r\n",
        400,
        "not followed by CRLF",
    ),
    "te identity, chunked": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
        501,
        "exactly one 'chunked'",
    ),
    "te ,chunked": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n",
        501,
        "exactly one 'chunked'",
    ),
    "te chunked, chunked": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        501,
        "exactly one 'chunked'",
    ),
    "two te lines": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        501,
        "exactly one 'chunked'",
    ),
    "te gzip line then chunked line": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        501,
        "exactly one 'chunked'",
    ),
    "te and cl": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n",
        400,
        "both Content-Length and Transfer-Encoding",
    ),
    "two identical cl": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        400,
        "Content-Length",
    ),
    "two authorization": (
        b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Basic dTpw\r\n"
        b"Authorization: Basic YWRtaW46YWRtaW4=\r\n\r\n",
        400,
        "more than one Authorization header",
    ),
    "two proxy-authorization": (
        b"GET / HTTP/1.1\r\nHost: a\r\nProxy-Authorization: a\r\nproxy-authorization: b\r\n\r\n",
        400,
        "more than one Proxy-Authorization header",
    ),
    "no host": (b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, "no Host header"),
    "no host in 1.0": (b"GET / HTTP/1.0\r\n\r\n", 400, "no Host header"),
    "no host in a later request": (
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /admin HTTP/1.1\r\n\r\n",
        400,
        "no Host header",
    ),
    "two hosts": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one Host"),
    "absolute-form with another scheme": (
        b"GET file:///etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        "scheme",
    ),
    "absolute-form with no authority": (
        b"GET http:///admin HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        "empty authority",
    ),
    "absolute-form with userinfo": (
        b"GET http://a@b.localhost/ HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        "userinfo",
    ),
    "two spaces in the request line": (
        b"GET  /admin HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        "malformed request line",
    ),
    "bare lf in the head hides a request": (
        b"GET / HTTP/1.1\r\nHost: a\n\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        "bare CR or LF",
    ),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n Host: b\r\n\r\n", 400, "obs-fold"),
    "nul in a header value": (b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", 400, "NUL"),
    "cl with a sign": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
        400,
        "Content-Length",
    ),
    "cl with inner space": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\nhello",
        400,
        "Content-Length",
    ),
}


@pytest.mark.parametrize(("data", "status", "rule"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_request_is_refused_naming_the_rule(data, status, rule):
    error = refused(data)
    assert error.status == status, error.message
    assert rule in error.message


def test_x_forwarded_in_any_spelling_is_not_forwarded():
    data = (
        b"GET / HTTP/1.1\r\nHost: app.localhost\r\nX_Forwarded_For: 127.0.0.1\r\n"
        b"x-forwarded_host: admin.internal\r\nX_FORWARDED_PROTO: https\r\n\r\n"
    )
    head = accepted(data)[0]
    out = forwarded_head(head, "203.0.113.9", "http")
    assert b"127.0.0.1" not in out and b"admin.internal" not in out
    assert out.endswith(
        b"Host: app.localhost\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: http\r\n"
        b"X-Forwarded-Host: app.localhost\r\n\r\n"
    )


def test_absolute_form_routes_by_the_target_not_the_host_header():
    data = b"GET http://victim.localhost/admin HTTP/1.1\r\nHost: mine.localhost\r\n\r\n"
    head, end = accepted(data)
    assert isinstance(head, RequestHead) and end is MESSAGE_END
    assert head.absolute and head.host == "victim.localhost"
    assert forwarded_head(head, "203.0.113.9", "http").endswith(
        b"X-Forwarded-Host: victim.localhost\r\n\r\n"
    )


def test_every_x_forwarded_for_line_counts():
    data = (
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 198.51.100.1\r\n"
        b"X-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n\r\n"
    )
    head = accepted(data)[0]
    assert header_list(head, b"x-forwarded-for") == ["198.51.100.1", "10.0.0.1", "10.0.0.2"]


def test_a_cgi_backend_sees_one_host_and_only_the_relays_forwarded_fields():
    """CGI/WSGI name fields HTTP_ + upper(name) with - as _: spellings that collide are gone."""
    data = (
        b"GET / HTTP/1.1\r\nHost: app.localhost\r\nX_Forwarded_For: 127.0.0.1\r\n"
        b"X-Forwarded_Host: admin\r\nx_forwarded-proto: https\r\nX-Host: other\r\n\r\n"
    )
    out = forwarded_head(accepted(data)[0], "203.0.113.9", "http")
    names = [
        "HTTP_" + line.split(b":", 1)[0].decode().upper().replace("-", "_")
        for line in out.split(b"\r\n")[1:-2]
    ]
    for key in ("HTTP_HOST", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_HOST"):
        assert names.count(key) == 1, names
    assert names.count("HTTP_X_FORWARDED_PROTO") == 1
