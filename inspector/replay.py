"""Replay: send a captured request again, to the local app (as ngrok does) or through the relay.

The request comes from the store's copy, or from the capturing process's in-memory original
(:mod:`inspector.originals`) when it has one: the stored copy is redacted, so it sends
``[redacted]`` where secrets were. A request whose body the store cut is refused (it cannot be
sent exactly). The answer is read with httptools, bounded, and stored as a new exchange linked to
the original (``replay_of``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

from inspector.message import ReplayRequest
from inspector.model import StoredExchange, prepare
from inspector.originals import OriginalRequest
from inspector.public_host import routed_authority
from inspector.redact import MARKER, Redactor
from inspector.store import CaptureStore
from relay.events import Capture, RequestRecord
from relay.terminal_text import visible

DEFAULT_TIMEOUT = 30.0
RESPONSE_KEEP = 10 * 1024 * 1024  # response bytes kept for the store; the rest is read, not kept
_FORWARDED = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
_MARKER = MARKER.encode()


class ReplayError(Exception):
    """A replay that failed (the app unreachable, silent, or not speaking HTTP); says why."""


class NotReplayable(ReplayError):
    """The request itself cannot be sent again (its body was cut, its head never captured)."""


@dataclass(slots=True)
class Replayed:
    """A replay's outcome: where it went, what was sent, the answer as a record, notes."""

    url: str
    sent: bytes
    record: RequestRecord
    notes: list[str] = field(default_factory=list)
    via_relay: bool = False
    exchange_id: int | None = None  # once stored


def from_exchange(
    exchange: StoredExchange, original: OriginalRequest | None = None
) -> tuple[ReplayRequest, bool]:
    """The request to send, and whether it is the store's redacted copy (no original held)."""
    if original is not None and not original.truncated:
        return ReplayRequest.from_head(original.head, original.body), False
    if not exchange.request_head:
        raise NotReplayable(
            f"request {exchange.id} was stored without its head and body (captures were off "
            "for it); it cannot be replayed"
        )
    body = exchange.request_body
    if body.truncated:
        raise NotReplayable(
            f"the body was cut at {len(body.data)} bytes (of {body.size}); this request cannot "
            "be replayed exactly"
        )
    return ReplayRequest.from_head(exchange.request_head, body.data), True


def carries_marker(request: ReplayRequest) -> bool:
    """Whether the store's redaction marker is in the request (what it replaced is not sent)."""
    return (
        _MARKER in request.body
        or MARKER in request.target
        or any(MARKER in v for _, v in request.headers)
    )


def destination(
    exchange: StoredExchange,
    request: ReplayRequest,
    target: str | None,
    via_relay: bool,
    public_url: str = "",
) -> str:
    """The URL to connect to: ``target``, the public URL (via the relay), or the tunnel's app.
    ``public_url``: the tunnel's, from its relay's WELCOME, when the replaying process runs it."""
    if via_relay and public_url and not target:
        return _public_origin(request, public_url)
    if via_relay:
        host = request.header("host")
        if not host and not request.target.lower().startswith(("http://", "https://")):
            raise NotReplayable("the request has no Host header, so its public URL is not known")
        # Where the relay routed it, never the Host as such: a visitor's absolute-form request
        # carries any Host it likes, and a replay (re-signed with your secret) would go there.
        authority = routed_authority(request.target, host)
        if authority is None and not target:
            raise NotReplayable(
                f"the request's Host {host!r} is not a host name (host or host:port), so its "
                "public URL is not known; give it with --target https://NAME.your-relay"
            )
        if authority is not None and not target and not _routable(authority):
            raise NotReplayable(
                f"the request came for {visible(authority)!r}, which no molehill relay routes a "
                "tunnel by (its public name is NAME.DOMAIN): a relay that is not yours can write "
                "any Host, and a replay through the relay would go to that host on your network; "
                "give the public URL with --target https://NAME.your-relay"
            )
        proto = (request.header("x-forwarded-proto") or "https").split(",")[0].strip().lower()
        if proto not in ("http", "https"):
            proto = "https"
        # The relay adds these again; the captured ones would be sent twice.
        request.remove_headers(_FORWARDED)
        return target or f"{proto}://{authority}"
    if target:
        return target
    if exchange.target:
        return exchange.target
    raise NotReplayable(
        f"where tunnel '{exchange.tunnel}' sends its requests was not recorded; give the local "
        "app with --target http://localhost:PORT"
    )


def _routable(authority: str) -> bool:
    """Whether a relay could have routed a request by this host: NAME.DOMAIN, not an IP address
    (127.0.0.1, [::1], 10.0.0.5) and not one label (localhost, db), which name no tunnel."""
    hostname = urlsplit(f"//{authority}").hostname or ""
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return "." in hostname.strip(".")
    return False


def _public_origin(request: ReplayRequest, public_url: str) -> str:
    """The tunnel's public URL, if the request was routed to its host; NotReplayable if not.

    The Host a request arrived with is the relay's to write: a relay that is not ours (shared,
    compromised) can deliver a request "for" 10.0.0.5:8080 or localhost:6379, and a replay
    through the relay would then send it, with the developer's real secrets and re-signed
    webhooks, to that host on the developer's network. The host the relay named in its
    WELCOME is the only one a replay through the relay goes to."""
    public = urlsplit(public_url)
    authority = routed_authority(request.target, request.header("host"))
    routed = urlsplit(f"//{authority}").hostname if authority else None
    if routed is None or (public.hostname or "").rstrip(".") != routed.rstrip("."):
        shown = visible(authority or request.header("host") or "")
        raise NotReplayable(
            f"the relay delivered this request for {shown!r}, not for the tunnel's public host "
            f"{public.hostname}: a replay through the relay goes to {public_url} only (give "
            '--target / "target" to send it elsewhere)'
        )
    request.remove_headers(_FORWARDED)  # the relay adds these again
    return f"{public.scheme}://{public.netloc}"


def split_url(url: str) -> tuple[str, int, bool]:
    """(host to connect to, port, TLS) of an http:// or https:// URL; names under .localhost
    are loopback (RFC 6761), as browsers treat them."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotReplayable(
            f"{url!r} is not an http:// or https:// URL, e.g. http://localhost:3000"
        )
    tls = parts.scheme == "https"
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError:
        raise NotReplayable(f"{url!r} has a port that is not a number from 1 to 65535") from None
    host = parts.hostname
    if host == "localhost" or host.endswith(".localhost"):
        host = "127.0.0.1"
    return host, port, tls


class _Response:
    """httptools callbacks: where the head ends and whether the message is complete."""

    def __init__(self) -> None:
        self.head_done = False
        self.complete = False

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_message_complete(self) -> None:
        self.complete = True


async def send(
    request: ReplayRequest,
    url: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    keep: int = RESPONSE_KEEP,
) -> tuple[bytes, RequestRecord]:
    """Send ``request`` to ``url`` on a new connection; what was sent, and the exchange."""
    host, port, tls = split_url(url)
    if tls and ssl_context is None:
        ssl_context = ssl.create_default_context()
    sent = request.to_bytes()
    head_len = sent.index(b"\r\n\r\n") + 4
    started = time.time()
    clock = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=ssl_context if tls else None,
                server_hostname=urlsplit(url).hostname if tls else None,
            )  # fmt: skip
            try:
                writer.write(sent)
                await writer.drain()
                raw, ttfb, total, cut = await _read_response(reader, request.method, keep, clock)
            finally:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
    except TimeoutError:
        raise ReplayError(f"{url} did not answer within {timeout:g}s") from None
    except ssl.SSLError as exc:
        raise ReplayError(f"TLS with {url} failed: {exc.reason or exc}") from None
    except OSError as exc:
        raise ReplayError(f"cannot reach {url}: {exc.strerror or exc}") from None
    head_end = raw.find(b"\r\n\r\n") + 4
    status = int(raw[9:12]) if raw[9:12].isdigit() else 0
    version = raw[5:8].decode("latin-1") if raw.startswith(b"HTTP/") else "1.1"
    record = RequestRecord(
        time=started,
        method=request.method,
        path=request.target,
        status=status,
        duration_ms=(time.perf_counter() - clock) * 1000,
        bytes_in=len(sent),
        bytes_out=total,
        client="replay",
        stream=0,
        http_version=version,
        ttfb_ms=ttfb,
        capture=Capture(
            request_head=sent[:head_len],
            response_head=raw[:head_end],
            request_body=sent[head_len:],
            response_body=raw[head_end:],
            response_truncated=cut,
        ),
    )
    return sent, record


async def _read_response(
    reader: asyncio.StreamReader, method: str, keep: int, clock: float
) -> tuple[bytes, float, int, bool]:
    """The response's bytes (up to ``keep``), time to its first byte, its size, whether cut."""
    events = _Response()
    parser = httptools.HttpResponseParser(events)
    raw = bytearray()
    total = 0
    ttfb = 0.0
    while not events.complete:
        data = await reader.read(65536)
        if not data:
            if events.head_done:
                break  # a body that runs to the connection's end
            raise ReplayError("the app closed the connection without a whole response head")
        if not total:
            ttfb = (time.perf_counter() - clock) * 1000
        total += len(data)
        if len(raw) < keep:
            raw += data[: keep - len(raw)]
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            break
        except httptools.HttpParserError as exc:
            raise ReplayError(f"the app's response is not valid HTTP/1.1: {exc}") from None
        no_body = method.upper() == "HEAD" or parser.get_status_code() in (204, 304)
        if events.head_done and no_body:
            break
    return bytes(raw), ttfb, total, total > len(raw)


async def replay(
    exchange: StoredExchange,
    request: ReplayRequest,
    *,
    target: str | None = None,
    via_relay: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    public_url: str = "",
) -> Replayed:
    """Send ``request`` (built by from_exchange, maybe edited and re-signed) where it belongs."""
    url = destination(exchange, request, target, via_relay, public_url)
    sent, record = await send(request, url, ssl_context=ssl_context, timeout=timeout)
    return Replayed(url, sent, record, via_relay=via_relay)


def store_replay(
    store: CaptureStore,
    exchange: StoredExchange,
    replayed: Replayed,
    redactor: Redactor,
    body_cap: int,
) -> int:
    """Keep the replay in the store (redacted like any capture), linked to the exchange."""
    stored = prepare(
        exchange.tunnel,
        replayed.record,
        redactor,
        body_cap,
        # The local app it went to: a replay through the relay reached the tunnel's own.
        target=exchange.target if replayed.via_relay else replayed.url,
        replay_of=exchange.id,
    )
    replayed.exchange_id = store.add([stored])[0]
    return replayed.exchange_id
