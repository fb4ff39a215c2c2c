"""`molehill connections list` prints what a local API answers, and any program on 4040..4050 may
answer in molehill's shape: its text reaches the terminal spelled out, never obeyed."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
    def do_GET(self) -> None:
        body = json.dumps(ANSWER).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_an_impostor_apis_escape_sequences_are_spelled_out():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Impostor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tui.cli", "connections", "list", "--api",
             f"http://127.0.0.1:{server.server_address[1]}"],
            cwd=ROOT, env=molehill_env({}), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "203.0.113.9\\x1b]52" in done.stdout and "db\\x1b" in done.stdout
