"""A tiny frontend for the tests: GET / calls $API_URL/api/hello (the backend's public URL)
and answers with what the backend said; GET /page is a page whose script does the same from the
browser, with fetch(), as a Vite app reading VITE_API_URL would."""

from __future__ import annotations

import http.client
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

API_URL = os.environ["API_URL"]


def call_backend(path: str) -> dict:
    """GET the backend through its public URL. NAME.localhost does not resolve everywhere, so
    connect to the relay's address with the URL's host in the Host header, as a browser does."""
    url = urlsplit(API_URL)
    address = "127.0.0.1" if url.hostname and url.hostname.endswith("localhost") else url.hostname
    conn = http.client.HTTPConnection(address, url.port or 80, timeout=5)
    conn.request("GET", path, headers={"Host": url.netloc})
    answer = conn.getresponse()
    return {"status": answer.status, "body": json.loads(answer.read())}


PAGE = """<!doctype html>
<title>frontend</title>
<p id="out">calling the backend...</p>
<script>
fetch(API_URL + "/api/hello")
  .then((answer) => answer.json().then((body) => ({status: answer.status, body})))
  .then((result) => { window.result = result; out.textContent = JSON.stringify(result); })
  .catch((error) => { window.result = {error: String(error)}; });
</script>
"""


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/page":
            page = PAGE.replace("API_URL +", json.dumps(API_URL) + " +").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        data = json.dumps({"api_url": API_URL, "backend": call_backend("/api/hello")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print(f"frontend listening on {server.server_address[1]}, API_URL={API_URL}", flush=True)
    server.serve_forever()
