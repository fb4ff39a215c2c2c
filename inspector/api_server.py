"""The local API's HTTP/1.1 server: loopback only, bounded, one request per connection.

Every request is checked before a handler sees it: the head within ``HEAD_LIMIT`` bytes and
``HEAD_TIMEOUT`` seconds (a slow client is cut off), a body only with a Content-Length up to
``BODY_LIMIT``, a peer on loopback, and a Host (and Origin, when sent) that names this machine,
so that a web page on another site cannot reach the API through DNS rebinding. Web pages on
this machine are kept out too: a browser's request from any other origin (another port is
another origin) is refused by its Origin or its Sec-Fetch-Site, so a page cannot replay or clear
captures with a form post. Other users of the machine are refused where the kernel says who a
connection is from (Linux). At most ``MAX_CONNECTIONS`` at once: held connections cannot starve
the tunnels, which share the process, of file descriptors. An answer of unknown length (the HAR)
is streamed, chunked, a piece at a time as the client takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import socket
import struct
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httptools

from inspector.peer_user import peer_uid

HEAD_LIMIT = 16 * 1024
BODY_LIMIT = 1024 * 1024
HEAD_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
WRITE_TIMEOUT = 60.0
MAX_CONNECTIONS = 64  # at once; more are answered 503 and closed
LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}
_SINGLE = {"host", "origin", "content-length", "sec-fetch-site"}  # one of each, or a 400
_REASONS = {
    200: "OK", 204: "No Content", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required",
    413: "Content Too Large", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable",
}  # fmt: skip


@dataclass(slots=True)
class ApiRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lowered; a repeated header keeps its last value
    body: bytes = b""
    authority: str = ""  # an absolute-form target's (http://HOST/path), else ""
    version: str = "1.1"

    def json(self) -> Any:
        """The body as JSON (an empty body is {}); ApiError 400 if it is not JSON."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            raise ApiError(400, "the body is not JSON") from None


@dataclass(slots=True)
class ApiResponse:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    # A body of unknown length, written after ``body`` a piece at a time: each once the client
    # has taken the one before, so a slow reader holds one piece in memory, not the answer.
    stream: AsyncGenerator[bytes, None] | None = None


class ApiError(Exception):
    """An answer other than success: ngrok's error shape, {"status_code", "msg"}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> ApiResponse:
        body = {"status_code": self.status, "msg": self.message}
        return ApiResponse(self.status, json.dumps(body).encode() + b"\n")


Handler = Callable[[ApiRequest], Awaitable[ApiResponse]]


def is_local_host(value: str) -> bool:
    """Whether a Host header (name[:port]) names this machine."""
    try:
        parts = urlsplit(f"//{value}")
        host, _ = parts.hostname, parts.port  # a port that is not a number: ValueError
    except ValueError:
        return False
    # Not names under .localhost: a resolver that asks the network for them (some do) lets a
    # hostile DNS server answer, and rebind such a name to this machine.
    return host is not None and host in LOCAL_NAMES


def is_local_origin(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and is_local_host(parts.netloc)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Head:
    """httptools callbacks for one request head."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.repeated: set[str] = set()
        self.done = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        if key in self.headers:
            self.repeated.add(key)
        self.headers[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.done = True


async def _read_request(reader: asyncio.StreamReader) -> ApiRequest:
    try:
        async with asyncio.timeout(HEAD_TIMEOUT):
            raw = await reader.readuntil(b"\r\n\r\n")
    except TimeoutError:
        raise ApiError(408, f"the request head took over {HEAD_TIMEOUT:g}s") from None
    except asyncio.LimitOverrunError:
        raise ApiError(431, f"the request head is over {HEAD_LIMIT} bytes") from None
    except asyncio.IncompleteReadError:
        raise ConnectionResetError from None
    head = _Head()
    parser = httptools.HttpRequestParser(head)
    try:
        parser.feed_data(raw)
    except httptools.HttpParserUpgrade:
        pass
    except httptools.HttpParserError as exc:
        raise ApiError(400, f"malformed request: {exc}") from None
    if not head.done:
        raise ApiError(400, "malformed request head")
    for name in sorted(head.repeated & _SINGLE):
        # Which one would count? Two parsers may pick differently (RFC 9112 3.2: a 400).
        raise ApiError(400, f"more than one {name.title()} header")
    if "transfer-encoding" in head.headers:
        raise ApiError(411, "send the body with a Content-Length, not chunked")
    length_text = head.headers.get("content-length", "0")
    if not length_text.isdigit():
        raise ApiError(400, f"Content-Length {length_text!r} is not a number")
    length = int(length_text)
    if length > BODY_LIMIT:
        raise ApiError(413, f"the body is {length} bytes; the API takes {BODY_LIMIT} at most")
    body = b""
    if length:
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                body = await reader.readexactly(length)
        except TimeoutError:
            raise ApiError(408, f"the body took over {BODY_TIMEOUT:g}s") from None
    url = urlsplit(head.url.decode("latin-1"))
    query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
    method = parser.get_method().decode("latin-1")
    version = parser.get_http_version()
    return ApiRequest(method, url.path, query, head.headers, body, url.netloc, version)


def _check_origin(request: ApiRequest) -> None:
    host = request.headers.get("host")
    if host is None or not is_local_host(host):
        raise ApiError(
            403,
            f"Host {host!r} is not this machine; the API answers only to localhost, "
            "127.0.0.1 or [::1] (a guard against DNS rebinding)",
        )
    if request.authority and not is_local_host(request.authority):
        # An absolute-form target's authority overrides Host (RFC 9112 3.2.2).
        raise ApiError(403, f"the request is addressed to {request.authority!r}, not this machine")
    fetch_site = request.headers.get("sec-fetch-site", "").strip().lower()
    if fetch_site not in ("", "same-origin", "none"):
        raise ApiError(
            403,
            f"a web page on another origin sent this (Sec-Fetch-Site: {fetch_site}); the API "
            "answers pages it serves itself, and programs such as curl",
        )
    origin = request.headers.get("origin")
    if origin is not None and not is_local_origin(origin):
        raise ApiError(403, f"Origin {origin!r} is not local; cross-site requests are refused")
    if origin is not None and not _same_origin(origin, f"http://{host}"):
        raise ApiError(
            403,
            f"Origin {origin!r} is another origin than http://{host}: a page on another port of "
            "this machine is refused, as any other site",
        )


def _same_origin(a: str, b: str) -> bool:
    """Whether two http(s) URLs have one origin: scheme, host and port (defaulted)."""
    try:
        found = [urlsplit(url.lower()) for url in (a, b)]
        ports = [p.port or (443 if p.scheme == "https" else 80) for p in found]
    except ValueError:
        return False
    (x, y), (px, py) = found, ports
    return (x.scheme, x.hostname, px) == (y.scheme, y.hostname, py)


async def _check_user(peer: tuple[str, int], server: tuple[str, int]) -> None:
    """Refuse another user of this machine (where the kernel says who it is): a replay sends the
    originals, secrets and all, wherever its caller says."""
    uid = await asyncio.to_thread(peer_uid, peer, server)
    if uid is not None and uid != os.geteuid():
        raise ApiError(
            403,
            f"the API answers its own user only (uid {os.geteuid()}); this connection comes "
            f"from uid {uid}",
        )


def _encode(response: ApiResponse, chunked: bool) -> bytes:
    reason = _REASONS.get(response.status, "Unknown")
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    if response.status != 204:
        lines.append(f"Content-Type: {response.content_type}")
        if response.stream is None:
            lines.append(f"Content-Length: {len(response.body)}")
        elif chunked:
            lines.append("Transfer-Encoding: chunked")
        # else an HTTP/1.0 client (no chunked there): the body ends where the connection does
    lines += [f"{n}: {v}" for n, v in response.headers]
    lines += ["Cache-Control: no-store", "Connection: close"]
    body = b"" if response.status == 204 else response.body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _write_stream(
    writer: asyncio.StreamWriter, stream: AsyncGenerator[bytes, None], chunked: bool
) -> None:
    """Write a streamed body, each piece once the client has taken the one before (a client
    that takes none for WRITE_TIMEOUT is let go). It ends with the last chunk only if every
    piece came: any failure on the way cuts the connection, so a client cannot take what it got
    for a whole answer (chunked: a missing last chunk is an error every HTTP client reports)."""
    try:
        while (piece := await anext(stream, None)) is not None:
            if chunked:
                writer.write(b"%x\r\n" % len(piece))
            writer.write(piece)  # what the socket does not take now, the transport copies
            if chunked:
                writer.write(b"\r\n")
            del piece  # so that only the transport's copy waits while the client reads
            async with asyncio.timeout(WRITE_TIMEOUT):
                await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
    except BaseException as exc:
        _reset(writer)
        if not isinstance(exc, Exception):
            raise  # cancelled: the server is closing
    finally:
        await stream.aclose()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Cut the connection now, what is buffered dropped (close() would send it first), with a
    reset: a client reading to the end (HTTP/1.0, no chunks) sees an error, not an end."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def connection_handler(
    handler: Handler,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    active = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal active
        active += 1
        request: ApiRequest | None = None
        try:
            peer = writer.get_extra_info("peername")
            try:
                if active > MAX_CONNECTIONS:
                    # The API shares its process with the tunnels: connections held open must
                    # not use up the file descriptors the tunnels need. (The head is read for a
                    # moment, so that closing does not reset the answer away.)
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(0.2):
                            await reader.readuntil(b"\r\n\r\n")
                    raise ApiError(503, f"the API has {MAX_CONNECTIONS} connections open; retry")
                if not peer or not is_loopback(peer[0]):
                    raise ApiError(403, "the API answers only on loopback")
                await _check_user(peer, writer.get_extra_info("sockname"))
                request = await _read_request(reader)
                _check_origin(request)
                response = await handler(request)
            except ApiError as exc:
                response = exc.response()
            except Exception as exc:  # a bug: answered, so the client and the log know
                response = ApiError(
                    500, f"internal error ({type(exc).__name__}: {exc}); please report it"
                ).response()
            chunked = request is not None and request.version != "1.0"
            writer.write(_encode(response, chunked))
            async with asyncio.timeout(WRITE_TIMEOUT):  # a client that never reads is let go
                await writer.drain()
            if response.stream is not None:
                await _write_stream(writer, response.stream, chunked)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            _reset(writer)  # and what it did not read is dropped
        finally:
            active -= 1
            writer.close()  # sends what is still buffered (after a drain: 16 KiB at most)
            try:
                async with asyncio.timeout(WRITE_TIMEOUT):  # a client that stopped reading then
                    await writer.wait_closed()
            except TimeoutError:
                _reset(writer)
            except OSError:
                pass

    return serve


async def start_server(
    handler: Handler, host: str, port: int, last_port: int | None = None
) -> asyncio.Server:
    """Listen on host:port, or the next free port up to ``last_port``; OSError if none is."""
    if not is_loopback(host):
        raise OSError(f"the API listens on loopback only, not {host}")
    serve = connection_handler(handler)
    for candidate in range(port, (last_port or port) + 1):
        try:
            return await asyncio.start_server(serve, host, candidate, limit=HEAD_LIMIT)
        except OSError:
            if candidate == (last_port or port):
                raise
    raise OSError("no port to listen on")
