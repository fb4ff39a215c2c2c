"""Redaction at capture time: planted secrets reach neither the SQLite file nor any export."""

from __future__ import annotations

import json

import pytest

from inspector import CaptureSettings, open_writer
from inspector.redact import MARKER, Redactor
from inspector.settings import DEFAULT_REDACT_HEADERS, DEFAULT_REDACT_KEYS
from tests.inspector.records import exchange, molehill, observe, request_bytes, response_bytes

SECRETS = [f"S3CRET-{name}-{n}" for n, name in enumerate(
    ["bearer", "proxy", "cookie", "setcookie", "apikeyhdr", "jsonpw", "nested", "formtok",
     "query", "cut", "listed", "clientsecret", "custom", "accesstok"]
)]  # fmt: skip


def _redactor(**extra: tuple[str, ...]) -> Redactor:
    settings = CaptureSettings(**extra)  # type: ignore[arg-type]
    return Redactor(settings.all_redact_headers, settings.all_redact_keys)


def test_default_header_names_and_body_keys():
    assert set(DEFAULT_REDACT_HEADERS) == {
        "authorization", "proxy-authorization", "cookie", "set-cookie"
    }  # fmt: skip
    assert set(DEFAULT_REDACT_KEYS) == {
        "password", "token", "secret", "api_key", "access_token", "client_secret"
    }  # fmt: skip


def test_headers_are_replaced_case_insensitively_and_the_rest_kept_exactly():
    r = _redactor(redact_headers=("X-Api-Key",))
    head = (
        b"GET /x HTTP/1.1\r\nHost: a\r\nauthorization: Basic Zm9vOmJhcg==\r\n"
        b"X-API-KEY: k1\r\nCOOKIE: a=1; b=2\r\nX-Other: keep me\r\n\r\n"
    )
    assert r.head(head, request=True) == (
        b"GET /x HTTP/1.1\r\nHost: a\r\nauthorization: [redacted]\r\n"
        b"X-API-KEY: [redacted]\r\nCOOKIE: [redacted]\r\nX-Other: keep me\r\n\r\n"
    )


@pytest.mark.parametrize(
    "line",
    [b"Proxy-Authorization: Basic c2VjcmV0", b"SET-COOKIE: sid=abcdef", b"x-token-2: abcdef"],
)
def test_a_header_whose_name_contains_another_listed_name_alone_is_still_replaced(line):
    # The quick "no listed name in this head" test checks only the shortest names.
    r = _redactor(redact_headers=("X-Token", "X-Token-2"))
    head = b"GET / HTTP/1.1\r\nHost: a\r\n" + line + b"\r\n\r\n"
    name = line.partition(b":")[0]
    assert r.head(head, request=True) == head.replace(line, name + b": [redacted]")
    assert r.head(head.replace(line, b"X-Tok: abcdef"), request=True).endswith(b"abcdef\r\n\r\n")


def test_json_keys_are_replaced_at_any_depth_case_insensitively():
    r = _redactor()
    body = json.dumps(
        {"user": "ann", "Password": "p", "nested": [{"deep": {"API_KEY": 5, "ok": "x"}}]}
    ).encode()
    out = json.loads(r.body(body, "application/json"))
    assert out == {
        "user": "ann", "Password": MARKER, "nested": [{"deep": {"API_KEY": MARKER, "ok": "x"}}]
    }  # fmt: skip


def test_a_body_without_secrets_keeps_its_exact_bytes():
    r = _redactor()
    body = b'{ "a" : 1,\n  "b": [1, 2] }'
    assert r.body(body, "application/json") is body
    form = b"a=1&b=two+words"
    assert r.body(form, "application/x-www-form-urlencoded") is form


def test_form_keys_and_query_parameters_are_replaced():
    r = _redactor()
    form = b"user=ann&pass%77ord=hunter2&token=abc&note=x%26y"
    assert r.body(form, "application/x-www-form-urlencoded") == (
        b"user=ann&pass%77ord=%5Bredacted%5D&token=%5Bredacted%5D&note=x%26y"
    )
    assert r.target("/cb?code=1&access_token=zzz&x") == "/cb?code=1&access_token=%5Bredacted%5D&x"
    assert r.target("/no/query") == "/no/query"


def test_json_that_does_not_parse_is_still_scrubbed():
    r = _redactor()
    cut = b'{"a": "b", "token": "abc\\"def", "secret": 12345, "password": "unfinish'
    out = r.body(cut, "application/json")
    assert b"abc" not in out and b"12345" not in out and b"unfinish" not in out
    assert out.count(MARKER.encode()) == 3


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the JSON parser goes
        b'{"password": "\xff\xfe"}',  # not UTF-8
        b"\x00\x01{",
        b'{"password": ' * 5000,
    ],
)
def test_hostile_bodies_never_raise(body):
    out = _redactor().body(body, "application/json")
    assert isinstance(out, bytes)


def _secret_records():
    s = SECRETS
    login = json.dumps(
        {"user": "ann", "password": s[5], "profile": {"settings": [{"client_secret": s[11]}]}}
    ).encode()
    form = f"user=ann&token={s[7]}&access_token={s[13]}".encode()
    cut_json = b'{"x": "' + b"y" * 200 + b'", "secret": "' + s[9].encode() + b"-" * 500 + b'"}'
    return [
        ("api", exchange(
            "POST", f"/login?api_key={s[8]}", 200,
            [("Authorization", f"Bearer {s[0]}"), ("Proxy-Authorization", f"Basic {s[1]}"),
             ("Cookie", f"session={s[2]}"), ("X-Api-Key", s[4]),
             ("Content-Type", "application/json")],
            login,
            [("Set-Cookie", f"session={s[3]}; HttpOnly"), ("Content-Type", "application/json")],
            json.dumps({"token": s[10], "items": [{"secret": s[12]}]}).encode(),
        )),
        ("api", exchange(
            "POST", "/form", 302,
            [("Content-Type", "application/x-www-form-urlencoded")], form,
        )),
        ("api", observe(
            request_bytes("PUT", "/cut", [("Content-Type", "application/json")], cut_json),
            response_bytes(204), capture_bytes=250,
        )),
    ]  # fmt: skip


def test_planted_secrets_reach_neither_the_file_nor_any_export(tmp_path):
    path = tmp_path / "captures.sqlite3"
    writer = open_writer(CaptureSettings(path=path, redact_headers=("x-api-key",)))
    assert writer is not None
    records = _secret_records()
    for tunnel, record in records:
        writer.submit(tunnel, record)
    assert writer.flush() and writer.written == 3

    # The in-memory records (what replay will use) still hold the originals.
    assert SECRETS[0].encode() in records[0][1].capture.request_head  # type: ignore[union-attr]

    def assert_clean(data: bytes, where: str) -> None:
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret} found in {where}"
            assert secret[7:].encode() not in data, f"{secret} found in {where}"

    files = [p for p in tmp_path.iterdir() if p.name.startswith("captures.sqlite3")]
    assert any(p.name.endswith("-wal") for p in files)  # checked while the WAL is live
    for p in files:
        assert_clean(p.read_bytes(), p.name)

    outputs = {}
    for args in (
        ["requests", "list", "--json"],
        ["requests", "list"],
        *(["requests", "show", str(i)] for i in (1, 2, 3)),
        *(["requests", "show", str(i), "--json"] for i in (1, 2, 3)),
        *(["requests", "curl", str(i)] for i in (1, 2, 3)),
        ["requests", "export", "--har", "-"],
        ["requests", "export", "--har", str(tmp_path / "all.har")],
    ):
        done = molehill(path, *args)
        assert done.returncode == 0, (args, done.stderr)
        outputs[" ".join(args)] = done.stdout + done.stderr
    outputs["all.har"] = (tmp_path / "all.har").read_text()
    for where, text in outputs.items():
        assert_clean(text.encode(), where)
    assert MARKER in outputs["requests show 1"] and MARKER in outputs["all.har"]

    writer.close()
    for p in tmp_path.iterdir():
        assert_clean(p.read_bytes(), p.name)


def test_a_secret_the_request_carried_is_scrubbed_wherever_the_exchange_repeats_it():
    redactor = _redactor()
    head = (
        b"POST /login?api_key=qk-123456&page=2 HTTP/1.1\r\n"
        b"Authorization: Bearer tok-abcdef\r\nCookie: sid=sess-998877; theme=dark\r\n\r\n"
    )
    body = b'{"user": "ann", "password": "pa\\"ss-word"}'
    secrets = redactor.secrets(head, body, "application/json")
    echoed = (
        b'{"headers": {"authorization": "Bearer tok-abcdef", "cookie": "sid=sess-998877"},'
        b' "args": {"api_key": "qk-123456"}, "json": {"password": "pa\\"ss-word"}, "page": "2"}'
    )
    scrubbed = redactor.scrub(echoed, secrets)
    for secret in (b"tok-abcdef", b"sess-998877", b"qk-123456", b'pa\\"ss-word'):
        assert secret not in scrubbed
    assert b'"page": "2"' in scrubbed and b"theme" not in secrets  # short and public values stay
    assert redactor.scrub(b"Location: /next?api_key=qk-123456", secrets).endswith(MARKER.encode())


def test_short_secret_values_are_not_scrubbed_from_ordinary_text():
    redactor = _redactor()
    secrets = redactor.secrets(b"GET /?token=1 HTTP/1.1\r\nCookie: a=b\r\n\r\n", b"", "")
    assert secrets == []
    assert redactor.scrub(b"1 a b", secrets) == b"1 a b"
