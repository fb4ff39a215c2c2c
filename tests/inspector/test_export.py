"""Exports: curl commands real curl sends byte for byte, and HAR 1.2 that a HAR reader loads."""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from haralyzer import HarEntry, HarParser

from inspector import CaptureSettings, open_store
from inspector.export import curl_command, har_log
from tests.inspector.har_schema import check_har
from tests.inspector.records import exchange, fill, molehill, observe, request_bytes, response_bytes

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


class RecordingServer:
    """A loopback HTTP server that keeps the raw bytes of each request it gets."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                self.received.append(head + b"\r\n\r\n" + body)
                conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        # close() alone does not wake a thread blocked in accept(); shutdown() does (Linux).
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def server():
    srv = RecordingServer()
    yield srv
    srv.close()


BINARY = bytes(range(256)) * 40 + b"\r\n\x00tail"
ORIGINALS = {
    "get-odd-target": (
        b"GET /a/../b/./c//d?x=1&y=%20z&&q HTTP/1.1\r\nHost: app.tunnel.example\r\n"
        b"User-Agent: Go-http-client/1.1\r\nX-Empty:\r\nAccept-Encoding: gzip\r\n\r\n"
    ),
    "post-json": (
        b"POST /api/items HTTP/1.1\r\nHost: app.tunnel.example\r\nContent-Type: application/json"
        b"\r\nContent-Length: 27\r\nX-GitHub-Event: push\r\n\r\n"
        b'{"name": "it\'s \\"quoted\\""}'
    ),
    "post-binary": (
        b"POST /upload HTTP/1.1\r\nHost: app.tunnel.example\r\nContent-Type: application/octet-"
        b"stream\r\nContent-Length: "
        + str(len(BINARY)).encode()
        + b"\r\nAccept: */*\r\n\r\n"
        + BINARY
    ),
    "patch-crlf-text": (
        b"PATCH /notes/1 HTTP/1.1\r\nHost: app.tunnel.example\r\nContent-Length: 12\r\n"
        b"Content-Type: text/plain\r\n\r\nline1\r\nline2"
    ),
    "delete-repeated-headers": (
        b"DELETE /items/7 HTTP/1.1\r\nHost: app.tunnel.example\r\nX-Trace: one\r\n"
        b"X-Trace: two\r\nUser-Agent: $(rm -rf ~) `x` 'y'\r\n\r\n"
    ),
    "head": b"HEAD /health HTTP/1.1\r\nHost: app.tunnel.example\r\nAccept: text/html\r\n\r\n",
    # curl reads `--data-binary @NAME` from the file NAME: a visitor's body that starts with @
    # must not make the developer's curl send one of their files (the test plants one).
    "post-at-a-file-name": (
        b"POST /hook HTTP/1.1\r\nHost: app.tunnel.example\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 11\r\n\r\n@secret.txt"
    ),
    "large-text-no-expect": (
        b"PUT /big HTTP/1.1\r\nHost: app.tunnel.example\r\nContent-Length: 2000000\r\n\r\n"
        + b"a" * 2_000_000
    ),
}


@pytest.mark.parametrize("name", sorted(ORIGINALS))
def test_the_curl_command_resends_the_request_byte_for_byte(tmp_path, server, name):
    original = ORIGINALS[name]
    path = tmp_path / "c.sqlite3"
    fill(path, [("api", observe(original, response_bytes(200)))])
    body_file = tmp_path / "body.bin"
    printed = molehill(
        path, "requests", "curl", "1", "--url", f"http://127.0.0.1:{server.port}",
        "--body-file", str(body_file),
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    command = printed.stdout.strip()
    assert command.startswith("curl ") and "\n" not in command
    (tmp_path / "secret.txt").write_text("a file of the developer's, never sent")
    ran = subprocess.run(["bash", "-c", command], capture_output=True, timeout=60, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert server.received == [original]


def test_a_binary_body_goes_through_a_file(tmp_path):
    path = tmp_path / "c.sqlite3"
    fill(path, [("api", observe(ORIGINALS["post-binary"], response_bytes(200)))])
    with open_store(CaptureSettings(path=path)) as store:
        e = store.get(1)
    assert e is not None
    with pytest.raises(ValueError, match="body_file"):
        curl_command(e)
    command, warnings = curl_command(e, body_file=tmp_path / "b.bin")
    assert f"--data-binary @{tmp_path / 'b.bin'}" in command
    assert any("long or binary" in w for w in warnings)
    assert command.endswith("https://app.tunnel.example")  # default: the public host
    printed = molehill(path, "requests", "curl", "1")  # the CLI writes it to a temp file
    assert printed.returncode == 0
    body_path = Path(printed.stdout.split("--data-binary @", 1)[1].split()[0])
    try:
        assert body_path.read_bytes() == BINARY
    finally:
        body_path.unlink()


def test_a_cut_body_is_sent_as_kept_with_a_warning(tmp_path, server):
    path = tmp_path / "c.sqlite3"
    original = request_bytes("POST", "/cut", [("Content-Type", "text/plain")], b"k" * 5000)
    fill(path, [("api", observe(original, response_bytes(200), capture_bytes=1000))])
    printed = molehill(path, "requests", "curl", "1", "--url", f"http://127.0.0.1:{server.port}")
    assert printed.returncode == 0
    assert "cut at 1000 of 5000 bytes" in printed.stderr
    ran = subprocess.run(["bash", "-c", printed.stdout], capture_output=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert server.received[0].endswith(b"Content-Length: 1000\r\n\r\n" + b"k" * 1000)


def _mixed_exchanges():
    return [
        ("api", exchange(
            "POST", "/api/hook?source=gh&x=", 201,
            [("Content-Type", "application/json"), ("X-GitHub-Event", "push")],
            b'{"ref": "refs/heads/main", "caf\xc3\xa9": 1}',
            [("Content-Type", "application/json"), ("Location", "/api/hook/1")],
            b'{"id": 1}',
        )),
        ("web", exchange(
            "GET", "/logo.png", 200, [("Accept", "image/png")], b"",
            [("Content-Type", "image/png")], b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
        )),
        ("api", exchange(
            "PUT", "/raw", 500, [("Content-Type", "application/octet-stream")],
            b"\xff\xfe\x00binary", [("Content-Type", "text/plain")], b"boom",
        )),
        ("api", observe(request_bytes("GET", "/hang"), None)),  # no response at all
    ]  # fmt: skip


def test_har_export_is_valid_har_1_2_that_haralyzer_loads(tmp_path):
    path = tmp_path / "c.sqlite3"
    fill(path, _mixed_exchanges(), body_cap=200)
    har_file = tmp_path / "all.har"
    done = molehill(path, "requests", "export", "--har", str(har_file))
    assert done.returncode == 0, done.stderr
    assert "wrote 4 requests" in done.stderr
    har = json.loads(har_file.read_text())
    check_har(har)
    entries = har["log"]["entries"]
    assert [e["request"]["url"] for e in entries] == [
        "https://app.tunnel.example/api/hook?source=gh&x=",
        "https://app.tunnel.example/logo.png",
        "https://app.tunnel.example/raw",
        "https://app.tunnel.example/hang",
    ]
    hook, logo, raw, hang = entries
    assert hook["request"]["postData"]["text"] == '{"ref": "refs/heads/main", "café": 1}'
    assert hook["request"]["queryString"] == [
        {"name": "source", "value": "gh"},
        {"name": "x", "value": ""},
    ]
    assert {"name": "X-GitHub-Event", "value": "push"} in hook["request"]["headers"]
    assert hook["response"]["redirectURL"] == "/api/hook/1"
    assert hook["response"]["statusText"] == "Created"
    content = logo["response"]["content"]
    assert content["encoding"] == "base64" and content["mimeType"] == "image/png"
    full = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    assert base64.b64decode(content["text"]) == full[:200]  # cut at the body cap
    assert content["size"] == len(full) and "cut at 200" in content["comment"]
    assert raw["request"]["postData"]["_encoding"] == "base64"
    assert base64.b64decode(raw["request"]["postData"]["text"]) == b"\xff\xfe\x00binary"
    assert hang["response"]["status"] == 502 and hang["response"]["headersSize"] == -1

    parser = HarParser(har)
    loaded = [HarEntry(e) for e in parser.har_data["entries"]]
    assert [(e.request.method, e.status, e.url) for e in loaded][:3] == [
        ("POST", 201, "https://app.tunnel.example/api/hook?source=gh&x="),
        ("GET", 200, "https://app.tunnel.example/logo.png"),
        ("PUT", 500, "https://app.tunnel.example/raw"),
    ]
    assert loaded[0].request.get_header_value("X-GitHub-Event") == "push"


def test_har_export_of_a_filter_and_of_one(tmp_path):
    path = tmp_path / "c.sqlite3"
    fill(path, _mixed_exchanges())
    done = molehill(path, "requests", "export", "--har", "-", "--", "tunnel:api", "-status:500")
    assert done.returncode == 0, done.stderr
    har = json.loads(done.stdout)
    check_har(har)
    assert [e["request"]["url"].rsplit("/", 1)[1] for e in har["log"]["entries"]] == [
        "hook?source=gh&x=", "hang"
    ]  # fmt: skip
    with open_store(CaptureSettings(path=path)) as store:
        one = store.get(2)
    assert one is not None
    single = har_log([one], base_url="http://localhost:3000")
    check_har(single)
    assert single["log"]["entries"][0]["request"]["url"] == "http://localhost:3000/logo.png"
