"""A tiny backend for the tests: GET /api/hello answers JSON; /healthz 200 once READY_AFTER s."""

from __future__ import annotations

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STARTED = time.monotonic()
READY_AFTER = float(os.environ.get("READY_AFTER", "0"))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz":
            ready = time.monotonic() - STARTED >= READY_AFTER
            self._send(200 if ready else 503, {"ready": ready})
        elif self.path == "/api/hello":
            self._send(200, {"hello": "from the backend", "host": self.headers.get("Host")})
        else:
            self._send(404, {"error": "no such path"})

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        # A page on the frontend's public URL calls it from the browser (another origin).
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        print("backend:", format % args, flush=True)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print(f"backend listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
