"""The local API attacked as a web page and a local program would, on real sockets: Host and
Origin variants (DNS rebinding, other local ports), Sec-Fetch-Site, a cross-site form post that
would replay or clear, hostile query strings and bodies, slow clients, a handler's bug."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from inspector import api_server
from inspector.api import InspectorApi, TunnelInfo
from inspector.api_server import ApiRequest, start_server
from inspector.settings import CaptureSettings
from tests.inspector.records import exchange as record
from tests.inspector.records import fill

PYTHON = "/usr/bin/python3"  # one every user can run (this test's may be under /root)


class CountingApp:
    """The developer's local app: counts the replays that reach it."""

    def __init__(self) -> None:
        self.hits: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.hits.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()


@asynccontextmanager
async def running_api(tmp_path):
    """(API port, the app replays go to); the store holds one POST /orders, id 1."""
    app = CountingApp()
    app_server = await asyncio.start_server(app.handle, "127.0.0.1", 0)
    addr = f"http://127.0.0.1:{app_server.sockets[0].getsockname()[1]}"
    path = tmp_path / "c.sqlite3"
    fill(path, [("web", record("POST", "/orders", 200, req_body=b'{"n": 1}'))])
    tunnels = [TunnelInfo("web", "http://web.localhost:8080", addr)]
    api = InspectorApi(CaptureSettings(path=path), lambda: tunnels)
    server = await start_server(api.handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], app
    finally:
        server.close()
        app_server.close()
        api.close()


@pytest.fixture
async def api(tmp_path):
    async with running_api(tmp_path) as found:
        yield found


async def send(port: int, head: str, body: bytes = b"") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    writer.write(head.encode("latin-1") + b"\r\n" + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    status = int(answer[9:12]) if answer[9:12].isdigit() else 0
    return status, answer


def get(path: str, headers: str) -> str:
    return f"GET {path} HTTP/1.1\r\n{headers}"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ("Host: LOCALHOST\r\n", 200),
        ("Host: [::1]\r\n", 200),
        ("Host: localhost:9\r\n", 200),  # another port: an ssh -L forward; a name still local
        ("Host: localhost.evil.com\r\n", 403),
        ("Host: api.localhost:4040\r\n", 403),  # a name some resolvers ask the network for
        ("Host: 127.0.0.1.nip.io\r\n", 403),
        ("Host: localhost.\r\n", 403),
        ("Host: localhost@evil.com\r\n", 403),
        ("Host: localhost:abc\r\nOrigin: http://localhost:abc\r\n", 403),
        ("Host: evil.com\r\nHost: localhost\r\n", 400),  # which one counts? neither
        ("Host: localhost\r\nHost: localhost\r\n", 400),
        ("", 403),
    ],
)
async def test_host_variants(api, headers, status):
    port, _ = api
    code, answer = await send(port, get("/api/tunnels", headers))
    assert code == status, answer
    assert (b"public_url" in answer) == (status == 200)


async def test_an_absolute_form_target_naming_another_host_is_refused(api):
    port, _ = api
    code, answer = await send(port, get("http://evil.com/api/tunnels", "Host: localhost\r\n"))
    assert code == 403 and b"evil.com" in answer and b"public_url" not in answer
    code, _ = await send(port, get(f"http://localhost:{port}/api/tunnels", "Host: localhost\r\n"))
    assert code == 200


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("null", 403),
        ("http://localhost.evil.com", 403),
        ("file://", 403),
        ("http://localhost:3000", 403),  # another local port is another origin
        ("http://127.0.0.1:{port}", 403),  # the page's origin is not the API's (localhost)
        ("https://localhost:{port}", 403),
        ("http://localhost:{port}", 200),  # a page the API served itself
    ],
)
async def test_origin_variants(api, origin, status):
    port, _ = api
    headers = f"Host: localhost:{port}\r\nOrigin: {origin.format(port=port)}\r\n"
    code, answer = await send(port, get("/api/tunnels", headers))
    assert code == status, answer


@pytest.mark.parametrize(
    ("site", "status"),
    [("cross-site", 403), ("same-site", 403), ("same-origin", 200), ("none", 200)],
)
async def test_sec_fetch_site(api, site, status):
    """An <img src=http://localhost:4040/api/requests/http.har> on any site sends no Origin;
    browsers send Sec-Fetch-Site (none: the developer typed the URL)."""
    port, _ = api
    headers = f"Host: localhost:{port}\r\nSec-Fetch-Site: {site}\r\nSec-Fetch-Mode: no-cors\r\n"
    code, answer = await send(port, get("/api/requests/http.har", headers))
    assert code == status, answer


async def test_a_form_post_from_a_page_replays_and_clears_nothing(api):
    """A "simple request" (text/plain, no preflight) from a page on another local port."""
    port, app = api
    page = (
        f"Host: localhost:{port}\r\nOrigin: http://localhost:3000\r\n"
        "Sec-Fetch-Site: same-site\r\nContent-Type: text/plain\r\n"
    )
    replay = f"POST /api/requests/http HTTP/1.1\r\n{page}"
    code, _ = await send(port, replay, b'{"id": "1"}')
    assert code == 403
    code, _ = await send(port, f"POST /api/requests/http/1/replay HTTP/1.1\r\n{page}", b"{}")
    assert code == 403
    code, _ = await send(port, f"DELETE /api/requests/http HTTP/1.1\r\n{page}")
    assert code == 403
    assert app.hits == []
    # A preflight gets no CORS grant, so a browser never sends the real DELETE.
    code, answer = await send(port, f"OPTIONS /api/requests/http HTTP/1.1\r\n{page}")
    assert code in (403, 405) and b"access-control-allow" not in answer.lower()
    # The same calls from a program (curl sends no Origin) work: the store was left whole.
    listed = json.loads((await send(port, get("/api/requests/http", "Host: localhost\r\n")))[1]
                        .split(b"\r\n\r\n", 1)[1])  # fmt: skip
    assert len(listed["requests"]) == 1
    code, _ = await send(port, "POST /api/requests/http HTTP/1.1\r\nHost: localhost\r\n",
                         b'{"id": "1"}')  # fmt: skip
    assert code == 204 and len(app.hits) == 1


@pytest.mark.parametrize(
    ("query", "status", "said"),
    [
        ("limit=%C2%B2", 400, b"limit="),  # a digit to str.isdigit(), not to int()
        ("limit=" + "9" * 5000, 200, b'"requests"'),  # more than int() reads: the maximum
        ("limit=-1", 400, b"limit="),
        ("limit=ten", 400, b"limit="),
        ("limit=", 400, b"limit="),
        ("filter=dur:fast", 400, b"dur:fast"),
        ("filter=status%3E" + "9" * 5000, 400, b"status"),
        ("filter=size%3E99999999999999999999999gb", 200, b'"requests"'),
        ("filter=%22unclosed", 400, b"bad filter"),
        ("filter=" + "(" * 3000, 400, b"bad filter"),
    ],
    ids=lambda value: str(value)[:30],
)
async def test_hostile_query_strings_get_a_400_that_names_them(api, query, status, said):
    port, _ = api
    code, answer = await send(port, get(f"/api/requests/http?{query}", "Host: localhost\r\n"))
    assert code == status, answer
    assert said in answer and b"Traceback" not in answer


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,  # nesting deeper than the parser's recursion
        b'{"target": 5}',
        b'{"target": ["http://x"]}',
        b'{"webhook_secrets": [1, 2]}',
        b'{"webhook_secrets": {"stripe": 7}}',
        b'{"webhook_secrets": {"stripe": "env:HOME"}}',  # the process's environment as a key
        b'{"edit": "GET / HTTP/1.1"}',
        b'{"edit": {"headers": [["X-A", "1\\r\\nHost: evil.example"]]}}',
        b'{"edit": {"headers": [["X-A\\nHost", "evil.example"]]}}',
        b'{"edit": {"method": "GET /x HTTP/1.1\\nX-Injected: 1\\n\\n"}}',
        b'{"edit": {"target": "/x HTTP/1.1\\r\\nX-Injected: 1"}}',
        b'{"edit": {"headers": "not a list"}}',
        b'{"edit": {"method": "CONNECT", "target": "evil.example:443"}}',  # safe as it was
        b'{"edit": {"body_base64": "%%%"}}',
    ],
    ids=lambda value: str(value)[:40],
)
async def test_hostile_replay_bodies_are_refused_and_send_nothing(api, body):
    port, app = api
    head = "POST /api/requests/http/1/replay HTTP/1.1\r\nHost: localhost\r\n"
    code, answer = await send(port, head, body)
    assert code == 400, answer
    assert app.hits == []


async def test_hostile_ngrok_replay_ids(api):
    port, app = api
    head = "POST /api/requests/http HTTP/1.1\r\nHost: localhost\r\n"
    for body in (b'{"id": "\\u00b2"}', b'{"id": "1e3"}', b'{"id": "' + b"9" * 5000 + b'"}'):
        code, answer = await send(port, head, body)
        assert code == 404 and b"ids are numbers" in answer, answer
    assert app.hits == []


async def test_slow_clients_do_not_hold_up_others(api, monkeypatch):
    port, _ = api
    monkeypatch.setattr(api_server, "HEAD_TIMEOUT", 30.0)
    monkeypatch.setattr(api_server, "BODY_TIMEOUT", 30.0)
    slow = []
    for _ in range(20):  # heads that never end, and a body that never comes
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/tunnels HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        slow.append(writer)
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /api/requests/http HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99\r\n\r\n{"
    )
    slow.append(writer)
    try:
        async with asyncio.timeout(5):
            code, answer = await send(port, get("/api/tunnels", "Host: localhost\r\n"))
        assert code == 200 and b"public_url" in answer
    finally:
        for w in slow:
            w.close()


async def test_a_handler_bug_is_answered_not_dropped():
    async def broken(request: ApiRequest):
        raise KeyError("missing")

    server = await start_server(broken, "127.0.0.1", 0)
    try:
        code, answer = await send(
            server.sockets[0].getsockname()[1], get("/api/tunnels", "Host: localhost\r\n")
        )
    finally:
        server.close()
    assert code == 500 and b"KeyError" in answer and b"Traceback" not in answer


async def test_held_connections_are_capped_and_the_api_recovers(api, monkeypatch):
    """The API shares its process (and file descriptors) with the tunnels."""
    port, _ = api
    monkeypatch.setattr(api_server, "MAX_CONNECTIONS", 8)
    held = [(await asyncio.open_connection("127.0.0.1", port))[1] for _ in range(8)]
    try:
        for writer in held:
            writer.write(b"GET /api/tunnels HTTP/1.1\r\n")
            await writer.drain()
        await asyncio.sleep(0.2)  # all eight are being read
        async with asyncio.timeout(5):
            code, answer = await send(port, get("/api/tunnels", "Host: localhost\r\n"))
        assert code == 503 and b"8 connections" in answer
    finally:
        for writer in held:
            writer.close()
    for _ in range(50):
        code, _ = await send(port, get("/api/tunnels", "Host: localhost\r\n"))
        if code == 200:
            break
        await asyncio.sleep(0.05)
    assert code == 200


CLIENT = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.argv[2].encode())
answer = b""
while chunk := s.recv(65536):
    answer += chunk
sys.stdout.write(answer.decode("latin-1"))
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0 or not Path(PYTHON).exists(),
    reason="needs Linux, root (to run a client as another user) and /usr/bin/python3",
)
async def test_another_user_of_the_machine_is_refused(api):
    """Loopback keeps other machines out, not other users: and a replay with a "target" would
    hand them the originals, secrets and all."""
    port, app = api
    request = "POST /api/requests/http/1/replay HTTP/1.1\r\nHost: localhost\r\n\r\n"

    async def as_user(uid: int) -> str:
        proc = await asyncio.create_subprocess_exec(
            PYTHON, "-I", "-S", "-c", CLIENT, str(port), request, user=uid, cwd="/",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err
        return out.decode()

    other = await as_user(65534)  # nobody
    assert other.startswith("HTTP/1.1 403") and "uid 65534" in other, other
    assert app.hits == []
    own = await as_user(os.geteuid())
    assert own.startswith("HTTP/1.1 200"), own
    assert len(app.hits) == 1
