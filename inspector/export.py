"""Exports of stored exchanges: a curl command that resends the request, and HAR 1.2.

Both read the store, so both carry the redaction markers, never the secrets. curl: the command
sends the same method, target (``--request-target``, ``--path-as-is``), headers in order and
body; a long or binary body goes through a file and ``--data-binary @file``. curl always sends
Host first and writes ``name: value`` with one space: a request that did otherwise differs in
that only. HAR: bodies that are not UTF-8 are base64 (``encoding`` on response
content, ``_encoding`` on request postData, as HAR has no field for it there).
"""

from __future__ import annotations

import base64
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from inspector.messages_view import har_websocket_messages, messages_json
from inspector.model import StoredBody, StoredExchange, header_value
from inspector.public_host import origin_form, routed_authority

_CREATOR = {"name": "molehill", "version": "0.1.0"}
# Headers curl adds on its own unless told not to (an empty "-H 'Name:'" removes one).
_CURL_ADDS = ("host", "user-agent", "accept")
_CURL_ADDS_WITH_BODY = ("content-type", "expect")


INLINE_BODY_MAX = 4096  # longer bodies go through a file: command lines have a length limit


def body_needs_file(data: bytes) -> bool:
    """Whether a body cannot go on a command line: long, not UTF-8, with control characters, or
    starting with ``@`` (curl would read the file of that name: a visitor's body ``@.env`` would
    send the project's secrets wherever the command sends it)."""
    if len(data) > INLINE_BODY_MAX or data.startswith(b"@"):
        return True
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return any(ord(ch) < 32 and ch not in "\n\t" for ch in text)


def curl_command(
    e: StoredExchange, base_url: str | None = None, body_file: Path | None = None
) -> tuple[str, list[str]]:
    """The curl command for ``e``'s request, and warnings (cut body, body file needed).

    ``base_url`` is where to send it (default ``https://`` + the Host header); ``body_file`` is
    where a binary body is to be written by the caller (``--data-binary @body_file``).
    """
    warnings: list[str] = []
    headers = e.request_headers
    url = (base_url or f"https://{_public_host(e, warnings)}").rstrip("/")
    args = ["curl", "--path-as-is"]
    args.append("--http1.0" if e.http_version == "1.0" else "--http1.1")
    if e.method == "HEAD":
        args.append("--head")
    else:
        args += ["-X", e.method]
    args += ["--request-target", e.path]
    body = e.request_body
    if body.truncated:
        warnings.append(
            f"the request body was cut at {len(body.data)} of {body.size} bytes: the command "
            "sends only what was kept (with a matching Content-Length)"
        )
    present = set()
    for name, value in headers:
        lowered = name.lower()
        if body.truncated and lowered in ("content-length", "transfer-encoding"):
            continue
        present.add(lowered)
        args += ["-H", f"{name}: {value}" if value else f"{name};"]
    absent = [h for h in _CURL_ADDS if h not in present]
    if body.data:
        absent += [h for h in _CURL_ADDS_WITH_BODY if h not in present]
    args += [arg for h in absent for arg in ("-H", f"{_title(h)}:")]
    if body.data:
        if body_needs_file(body.data):
            if body_file is None:
                raise ValueError("this body needs a file: give a body_file to write it to")
            args += ["--data-binary", f"@{body_file}"]
            warnings.append(f"the body is long or binary: it is sent from {body_file}")
        else:
            args += ["--data-binary", body.data.decode("utf-8")]
    args.append(url)
    return " ".join(shlex.quote(a) for a in args), warnings


def _public_host(e: StoredExchange, warnings: list[str]) -> str:
    """Where the request was sent: the name the relay routed it by, or localhost when the
    visitor's Host is not a host name (it could name another server once in a URL)."""
    host = header_value(e.request_headers, "host")
    found = routed_authority(e.path, host)
    if found is None and host:
        warnings.append(
            f"the request's Host {host!r} is not a host name: the command goes to localhost; "
            "give --url BASE for where to send it"
        )
    return found or "localhost"


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _har_headers(headers: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": n, "value": v} for n, v in headers]


def _text_or_base64(body: StoredBody) -> tuple[str, bool]:
    text = body.text()
    if text is not None:
        return text, False
    return base64.b64encode(body.data).decode("ascii"), True


def _status_text(head: bytes) -> str:
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    return parts[2] if len(parts) == 3 else ""


def har_entry(e: StoredExchange, base_url: str | None = None) -> dict[str, Any]:
    """One HAR 1.2 entry for ``e`` (``base_url`` as for :func:`curl_command`)."""
    url = (base_url or f"https://{_public_host(e, [])}").rstrip("/") + origin_form(e.path)
    version = f"HTTP/{e.http_version}"
    request: dict[str, Any] = {
        "method": e.method,
        "url": url,
        "httpVersion": version,
        "cookies": [],
        "headers": _har_headers(e.request_headers),
        "queryString": [
            {"name": n, "value": v}
            for n, v in parse_qsl(e.path.partition("?")[2], keep_blank_values=True)
        ],
        "headersSize": len(e.request_head) if e.request_head else -1,
        "bodySize": e.request_body.size,
    }
    if e.request_body.data or e.request_body.size:
        text, encoded = _text_or_base64(e.request_body)
        post: dict[str, Any] = {
            "mimeType": e.request_header("content-type") or "",
            "params": [],
            "text": text,
        }
        if encoded:
            post["_encoding"] = "base64"
        if e.request_body.truncated:
            post["comment"] = f"cut at {len(e.request_body.data)} of {e.request_body.size} bytes"
        request["postData"] = post
    text, encoded = _text_or_base64(e.response_body)
    content: dict[str, Any] = {
        "size": e.response_body.size,
        "mimeType": e.response_header("content-type") or "",
        "text": text,
    }
    if encoded:
        content["encoding"] = "base64"
    if e.response_body.truncated:
        content["comment"] = f"cut at {len(e.response_body.data)} of {e.response_body.size} bytes"
    response = {
        "status": e.status,
        "statusText": _status_text(e.response_head),
        "httpVersion": version,
        "cookies": [],
        "headers": _har_headers(e.response_headers),
        "content": content,
        "redirectURL": e.response_header("location") or "",
        "headersSize": len(e.response_head) if e.response_head else -1,
        "bodySize": e.response_body.size if e.response_head else -1,
    }
    wait = e.ttfb_ms if e.ttfb_ms is not None else e.duration_ms
    receive = max(0.0, e.duration_ms - wait)
    entry: dict[str, Any] = {
        "startedDateTime": _iso(e.time),
        "time": round(wait + receive, 3),
        "request": request,
        "response": response,
        "cache": {},
        "timings": {"send": 0, "wait": round(wait, 3), "receive": round(receive, 3)},
        "_molehill": {"id": e.id, "tunnel": e.tunnel, "client": e.client},
    }
    if e.messages_protocol == "websocket":  # as Chrome DevTools writes them
        entry["_resourceType"] = "websocket"
        entry["_webSocketMessages"] = har_websocket_messages(e)
    if e.messages_protocol:
        entry["_molehill"]["messages"] = messages_json(e)
    return entry


def har_log(exchanges: list[StoredExchange], base_url: str | None = None) -> dict[str, Any]:
    """A HAR 1.2 document with one entry per exchange, in the order given."""
    return har_document([har_entry(e, base_url) for e in exchanges])


def har_document(entries: Any) -> dict[str, Any]:
    """A HAR 1.2 document around ``entries`` (inspector.pages fills them in a page at a time)."""
    return {"log": {"version": "1.2", "creator": _CREATOR, "entries": entries}}
