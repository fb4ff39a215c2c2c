"""Realistic RequestRecords for the inspector tests: raw HTTP/1.1 bytes fed to the real observer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from inspector import CaptureSettings, CaptureWriter, open_writer
from relay.agent.observe import ExchangeObserver
from relay.events import RequestRecord
from tests.support.cli import molehill_env

CAPTURE_BYTES = 16 * 1024 * 1024
ROOT_DIR = Path(__file__).resolve().parents[2]


def store_process(settings: CaptureSettings) -> subprocess.Popen[bytes]:
    """The store process alone, as the spooler starts it, with pipes on all three ends."""
    from inspector.settings import settings_json

    return subprocess.Popen(
        [sys.executable, "-m", "inspector.capture_process", settings_json(settings)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT_DIR,
    )


def request_bytes(
    method: str,
    target: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    host: str = "app.tunnel.example",
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    named = {n.lower() for n, _ in headers or []}
    lines += [f"{n}: {v}" for n, v in headers or []]
    if body and "content-length" not in named and "transfer-encoding" not in named:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def response_bytes(
    status: int, headers: list[tuple[str, str]] | None = None, body: bytes = b""
) -> bytes:
    reasons = {200: "OK", 201: "Created", 204: "No Content", 302: "Found", 404: "Not Found"}
    lines = [f"HTTP/1.1 {status} {reasons.get(status, 'Whatever')}"]
    lines += [f"{n}: {v}" for n, v in headers or []]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def observe(
    request: bytes,
    response: bytes | None,
    capture_bytes: int = CAPTURE_BYTES,
    client: str = "203.0.113.7",
) -> RequestRecord:
    """The record the agent makes of this exchange (None response: the connection dropped)."""
    out: list[RequestRecord] = []
    observer = ExchangeObserver(client, 1, out.append, capture_bytes=capture_bytes)
    observer.request_bytes(request)
    if response is not None:
        observer.response_bytes(response)
    observer.close(502)
    assert len(out) == 1, out
    return out[0]


def exchange(
    method: str = "GET",
    target: str = "/",
    status: int = 200,
    req_headers: list[tuple[str, str]] | None = None,
    req_body: bytes = b"",
    resp_headers: list[tuple[str, str]] | None = None,
    resp_body: bytes = b"",
    capture_bytes: int = CAPTURE_BYTES,
) -> RequestRecord:
    return observe(
        request_bytes(method, target, req_headers, req_body),
        response_bytes(status, resp_headers, resp_body),
        capture_bytes,
    )


def corpus() -> list[tuple[str, RequestRecord]]:
    """A varied set of (tunnel, record): methods, statuses, paths, headers, bodies, durations."""
    out = []
    for i in range(60):
        tunnel = ("backend", "frontend", "hooks")[i % 3]
        method = ("GET", "POST", "PUT", "DELETE")[i % 4]
        status = (200, 201, 302, 404, 500, 503)[i % 6]
        target = ("/api/users", f"/api/users/{i}?page={i}", "/static/app.js", "/webhook", "/")[
            i % 5
        ]
        req_headers = [("Content-Type", "application/json")]
        if i % 7 == 0:
            req_headers.append(("X-GitHub-Event", "push" if i % 2 else "ping"))
        body = b'{"n": %d, "msg": "%s"}' % (i, b"Error happened" if i % 5 == 0 else b"fine")
        if i % 11 == 0:
            body = bytes(range(256)) * (i + 1)  # binary
        resp_body = b"x" * (i * 4000) if i % 4 == 0 else b'{"ok": true}'
        record = exchange(
            method,
            target,
            status,
            req_headers,
            body if method in ("POST", "PUT") else b"",
            [("Content-Type", "application/json"), ("X-Request-Id", f"req-{i}")],
            resp_body,
        )
        record.duration_ms = float(i * 37 % 1500)
        out.append((tunnel, record))
    return out


def fill(path: Path, items: list[tuple[str, RequestRecord]], **settings: object) -> None:
    """Write ``items`` to the store at ``path`` through a real CaptureWriter."""
    writer = open_writer(CaptureSettings(path=path, **settings))  # type: ignore[arg-type]
    assert isinstance(writer, CaptureWriter)
    for tunnel, record in items:
        writer.submit(tunnel, record)
    # The store runs on idle CPU only: on a saturated machine (two test workers and more) it
    # can be many seconds behind.
    assert writer.flush(timeout=60)
    assert writer.error is None and writer.dropped == 0
    writer.close()


def molehill(store: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`molehill ARGS` as a real process, with MOLEHILL_CAPTURE_FILE pointing at ``store``."""
    env = molehill_env({"MOLEHILL_CAPTURE_FILE": str(store)})
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        cwd=ROOT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
