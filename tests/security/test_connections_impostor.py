"""`molehill connections list` prints what a local API answers, and any program on 4040..4050 may
answer in molehill's shape: its text reaches the terminal spelled out, never obeyed."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.cli import ROOT, molehill_env

OSC52 = "\x1b]52;c;cm0gLXJmIH4=\x07"  # fill the clipboard with "rm -rf ~"
ANSWER = {
    "uri": "/api/connections",
    "tunnels": [
        {"name": f"db{OSC52}", "public_url": "tcp://x:1\x1b[2J", "open": 1, "total": 1,
         "throughput": {"in": 0, "out": 0}},
    ],
    "connections": [
        {"tunnel_name": "db", "client": f"203.0.113.9{OSC52}", "time": 1_700_000_000.0,
         "state": "closed", "duration_ms": 5.0, "bytes_in": 1, "bytes_out": 2,
         "closed": "\x1b]0;pwned\x07"},
    ],
}  # fmt: skip


class Impostor(BaseHTTPRequestHandler):
    answer: dict = ANSWER

    def do_GET(self) -> None:
        body = json.dumps(self.answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_an_impostor_apis_escape_sequences_are_spelled_out():
    done = _listing_of(ANSWER)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "203.0.113.9\\x1b]52" in done.stdout and "db\\x1b" in done.stdout


def _listing_of(answer: dict) -> subprocess.CompletedProcess[str]:
    """What `molehill connections list --api URL` prints of an API that answers ``answer``."""
    handler = type("Answer", (Impostor,), {"answer": answer})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        return subprocess.run(
            [sys.executable, "-m", "tui.cli", "connections", "list", "--api",
             f"http://127.0.0.1:{server.server_address[1]}"],
            cwd=ROOT, env=molehill_env({}), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        ("tunnels", "throughput", {"in": "x"}),
        ("tunnels", "throughput", {"in": None, "out": 0}),
        ("tunnels", "throughput", {"out": 1e400}),  # json.dumps writes Infinity
        ("tunnels", "throughput", {"in": -5}),
        ("tunnels", "throughput", []),
        ("tunnels", "open", True),
        ("tunnels", "total", 2.5),
        ("connections", "time", 1e20),
        ("connections", "time", float("nan")),
        ("connections", "duration_ms", float("inf")),
        ("connections", "bytes_in", -1),
        ("connections", "bytes_out", 10**30),
    ],
    ids=repr,
)
def test_an_answer_with_values_it_cannot_print_is_not_a_molehill_api(where, key, value):
    answer = copy.deepcopy(ANSWER)
    answer[where][0][key] = value
    done = _listing_of(answer)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert "is not a molehill local API" in done.stderr, done.stderr


def test_missing_rates_count_as_none_yet():
    answer = copy.deepcopy(ANSWER)
    answer["tunnels"][0]["throughput"] = {}
    done = _listing_of(answer)
    assert done.returncode == 0, done.stderr
    assert "0B/s in, 0B/s out" in done.stdout
