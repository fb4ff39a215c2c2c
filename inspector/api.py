"""The local API (ngrok's where ngrok has the call): tunnels, captured requests, replay, HAR,
and a TCP tunnel's connections (molehill's own: GET /api/connections).

Served by the process that runs the tunnels (see inspector.api_server for the guards). Store
reads and writes run on a worker thread, one at a time, so the tunnels' loop never waits on disk.
The HAR and the listing are read and serialised there a page at a time, and streamed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import threading
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from inspector.api_options import check_options, edited
from inspector.api_server import ApiError, ApiRequest, ApiResponse
from inspector.errors import StoreError
from inspector.filters import FilterError, parse
from inspector.messages_view import messages_json
from inspector.model import StoredExchange
from inspector.originals import OriginalRequest
from inspector.pages import HOLE, PagedDocument, har_pages
from inspector.redact import MARKER, Redactor
from inspector.replay import NotReplayable, ReplayError, from_exchange, replay, store_replay
from inspector.resign import ResignError, resign
from inspector.settings import CaptureSettings
from inspector.store import CaptureStore
from inspector.writer import CaptureWriter

T = TypeVar("T")
DEFAULT_LIMIT = 50
ORIGINAL_WAIT = 15.0  # seconds a replay waits for the store's answers (it runs on idle CPU only)
MAX_LIMIT = 10_000


@dataclass(slots=True)
class TunnelInfo:
    """What /api/tunnels shows of one tunnel."""

    name: str
    public_url: str
    addr: str  # the local app's URL
    insecure: bool = False  # an https app whose certificate is not checked
    webhook_secrets: dict[str, str] = field(default_factory=dict)
    # A TCP tunnel's connections, JSON-ready: {"open", "total", "throughput", "connections"}.
    connections: Callable[[], dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        if self.public_url.startswith("tcp://"):
            proto = "tcp"
        else:
            proto = "https" if self.public_url.startswith("https") else "http"
        return {
            "name": self.name,
            "uri": f"/api/tunnels/{self.name}",
            "public_url": self.public_url,
            "proto": proto,
            "config": {"addr": self.addr, "inspect": True},
        }


def _json(data: Any, status: int = 200) -> ApiResponse:
    return ApiResponse(status, json.dumps(data).encode() + b"\n")


def _headers(headers: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in headers:
        out.setdefault(name, []).append(value)
    return out


def request_json(e: StoredExchange) -> dict[str, Any]:
    """One exchange in ngrok's shape (plus molehill's fields: replay_of, truncated)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(e.time))
    status_line = e.response_head.split(b"\r\n", 1)[0].decode("latin-1")
    return {
        "uri": f"/api/requests/http/{e.id}",
        "id": str(e.id),
        "tunnel_name": e.tunnel,
        "remote_addr": e.client,
        "start": f"{stamp}.{int(e.time % 1 * 1e6):06d}Z",
        "duration": int(e.duration_ms * 1e6),  # nanoseconds, as ngrok
        "replay_of": None if e.replay_of is None else str(e.replay_of),
        "request": {
            "method": e.method,
            "proto": f"HTTP/{e.http_version}",
            "headers": _headers(e.request_headers),
            "uri": e.path,
            "raw": base64.b64encode(e.request_head + e.request_body.data).decode("ascii"),
            "truncated": e.request_body.truncated,
        },
        "response": {
            "status": status_line.partition(" ")[2],
            "status_code": e.status,
            "proto": status_line.partition(" ")[0],
            "headers": _headers(e.response_headers),
            "raw": base64.b64encode(e.response_head + e.response_body.data).decode("ascii"),
            "truncated": e.response_body.truncated,
        },
        # molehill's: an upgraded connection's WebSocket messages, an event stream's events.
        "messages": messages_json(e),
    }


class InspectorApi:
    """Routes the local API's requests; ``handle`` is the server's handler."""

    def __init__(
        self,
        settings: CaptureSettings,
        tunnels: Callable[[], list[TunnelInfo]],
        writer: CaptureWriter | None = None,
        webhook_secrets: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.tunnels = tunnels
        self.writer = writer
        self.webhook_secrets = dict(webhook_secrets or {})
        self.redactor = Redactor(settings.all_redact_headers, settings.all_redact_keys)
        self._store: CaptureStore | None = None
        self._lock = asyncio.Lock()
        self._store_lock = threading.Lock()

    def close(self) -> None:
        with self._store_lock:  # after a call still running on the worker thread, if any
            if self._store is not None:
                self._store.close()
                self._store = None

    async def _in_store(self, work: Callable[[CaptureStore], T]) -> T:
        if not self.settings.enabled:
            raise ApiError(503, "captures are off in this process (--no-capture)")

        def run() -> T:
            # The asyncio lock orders calls; this one holds the store for the thread itself,
            # since a cancelled caller (the server closing) lets go of the asyncio lock while
            # its call goes on here.
            with self._store_lock:
                if self._store is None:
                    self._store = CaptureStore(
                        self.settings.file, max_bytes=self.settings.max_bytes,
                        busy_timeout=self.settings.busy_timeout,
                    )  # fmt: skip
                return work(self._store)

        async with self._lock:
            try:
                return await asyncio.to_thread(run)
            except StoreError as exc:
                raise ApiError(503, str(exc)) from None

    async def handle(self, request: ApiRequest) -> ApiResponse:
        try:
            return await self._route(request)
        except ApiError:
            raise
        except (NotReplayable, ResignError) as exc:
            raise ApiError(400, str(exc)) from None
        except ReplayError as exc:  # the app failed to answer: a bad gateway, as a proxy says
            raise ApiError(502, str(exc)) from None

    async def _route(self, request: ApiRequest) -> ApiResponse:
        path = request.path.rstrip("/") or "/"
        method = request.method
        parts = path.split("/")[1:]
        if parts == ["api", "connections"]:
            return await self._allow(method, "GET", lambda: self._connections(request))
        if parts[:2] != ["api", "tunnels"] and parts[:3] != ["api", "requests", "http"]:
            if parts[:3] == ["api", "requests", "http.har"] and len(parts) == 3:
                return await self._allow(method, "GET", lambda: self._har(request))
            raise ApiError(404, f"no such API path: {request.path}")
        if parts[1] == "tunnels":
            if len(parts) == 2:
                return await self._allow(method, "GET", self._tunnels)
            if len(parts) == 3:
                return await self._allow(method, "GET", lambda: self._tunnel(parts[2]))
            raise ApiError(404, f"no such API path: {request.path}")
        if len(parts) == 3:
            if method == "GET":
                return await self._list(request)
            if method == "POST":
                return await self._replay_ngrok(request)
            if method == "DELETE":
                return await self._clear()
            raise ApiError(405, f"{method} is not allowed here (GET, POST, DELETE)")
        exchange_id = _id(parts[3])
        if len(parts) == 4:
            return await self._allow(method, "GET", lambda: self._one(exchange_id))
        if len(parts) == 5 and parts[4] == "replay":
            return await self._allow(method, "POST", lambda: self._replay(exchange_id, request))
        raise ApiError(404, f"no such API path: {request.path}")

    @staticmethod
    async def _allow(method: str, wanted: str, call: Callable[[], Any]) -> ApiResponse:
        if method != wanted:
            raise ApiError(405, f"{method} is not allowed here ({wanted})")
        response: ApiResponse = await call()
        return response

    async def _tunnels(self) -> ApiResponse:
        tunnels = [t.to_json() for t in self.tunnels() if t.public_url]
        return _json({"tunnels": tunnels, "uri": "/api/tunnels"})

    async def _connections(self, request: ApiRequest) -> ApiResponse:
        """Each TCP tunnel's figures, and its connections (open ones first), newest first."""
        wanted = request.query.get("tunnel_name")
        tunnels = [t for t in self.tunnels() if t.connections is not None]
        if wanted is not None:
            tunnels = [t for t in tunnels if t.name == wanted]
            if not tunnels:
                names = ", ".join(t.name for t in self.tunnels() if t.connections) or "none"
                raise ApiError(404, f"no TCP tunnel named {wanted!r} here (TCP tunnels: {names})")
        listed: list[dict[str, Any]] = []
        summary: list[dict[str, Any]] = []
        for tunnel in tunnels:
            assert tunnel.connections is not None
            view = tunnel.connections()
            rows = view.pop("connections")
            listed += [{"tunnel_name": tunnel.name, **row} for row in rows]
            summary.append({"name": tunnel.name, "public_url": tunnel.public_url, **view})
        body = {"connections": listed, "tunnels": summary, "uri": "/api/connections"}
        return _json(body)

    async def _tunnel(self, name: str) -> ApiResponse:
        for tunnel in self.tunnels():
            if tunnel.name == name:
                return _json(tunnel.to_json())
        raise ApiError(404, f"no tunnel named {name!r} in this process")

    async def _list(self, request: ApiRequest) -> ApiResponse:
        text = request.query.get("limit", str(DEFAULT_LIMIT))
        if not (text.isascii() and text.isdigit()):  # "²" is a digit to str.isdigit()
            raise ApiError(400, f"limit={text[:40]!r} is not a whole number (0 to {MAX_LIMIT})")
        limit = MAX_LIMIT if len(text) > 9 else min(int(text), MAX_LIMIT)
        skeleton = {"uri": "/api/requests/http", "requests": HOLE}
        tunnel = request.query.get("tunnel_name") or None
        doc = PagedDocument(
            skeleton, request_json, _filter(request), tunnel, newest_first=True, limit=limit
        )
        return await self._paged(doc)

    async def _paged(self, doc: PagedDocument) -> ApiResponse:
        """The document as an answer: with a length if it is one page, else streamed."""
        first = await self._in_store(doc.next_piece)  # a store that fails now: a 503, as ever
        if doc.done:
            return ApiResponse(200, first)
        return ApiResponse(200, stream=self._pieces(doc, [first]))

    async def _pieces(self, doc: PagedDocument, first: list[bytes]) -> AsyncGenerator[bytes, None]:
        yield first.pop()  # and held no longer: the transport has what the client did not take
        while not doc.done:
            # One page per turn of the store's lock: other calls get the store between pages.
            yield await self._in_store(doc.next_piece)

    async def _one(self, exchange_id: int) -> ApiResponse:
        return _json(request_json(await self._get(exchange_id)))

    async def _get(self, exchange_id: int) -> StoredExchange:
        found = await self._in_store(lambda s: s.get(exchange_id))
        if found is None:
            raise ApiError(404, f"no captured request {exchange_id}")
        return found

    async def _clear(self) -> ApiResponse:
        await self._in_store(lambda s: s.clear())
        if self.writer is not None:
            self.writer.originals.clear()
        return ApiResponse(204)

    async def _har(self, request: ApiRequest) -> ApiResponse:
        tunnel = request.query.get("tunnel_name") or None
        return await self._paged(har_pages(_filter(request), tunnel))

    async def _replay_ngrok(self, request: ApiRequest) -> ApiResponse:
        data = request.json()
        if not isinstance(data, dict) or "id" not in data:
            raise ApiError(400, 'expected {"id": "REQUEST_ID", "tunnel_name": "NAME"}')
        exchange_id = _id(str(data["id"]))
        await self._replay(exchange_id, None, data.get("tunnel_name"))
        return ApiResponse(204)

    async def _replay(
        self, exchange_id: int, request: ApiRequest | None, tunnel_name: str | None = None
    ) -> ApiResponse:
        options = request.json() if request is not None else {}
        if not isinstance(options, dict):
            raise ApiError(400, "the body must be a JSON object")
        return _json(await self.replay(exchange_id, options, tunnel_name))

    async def replay(
        self, exchange_id: int, options: dict[str, Any], tunnel_name: str | None = None
    ) -> dict[str, Any]:
        """Replay a stored exchange (with this process's original when it has one) and store
        the answer linked to it; ``options`` as the API's body (edit, via_relay, target...).
        Raises ApiError, ReplayError or ResignError with what went wrong."""
        check_options(options)
        exchange = await self._get(exchange_id)
        original = self.writer.originals.get(exchange_id) if self.writer else None
        if original is None and self.writer is not None:
            # Readers see an exchange once the store commits it; this process learns its id
            # (and files the original under it) when it reads the store's answer, a moment
            # later on a busy machine. Wait for the answers once, then look again.
            await asyncio.to_thread(self.writer.flush, ORIGINAL_WAIT)
            original = self.writer.originals.get(exchange_id)
        outgoing, from_store = from_exchange(exchange, original)
        captured = outgoing.copy()  # the signature to check before re-signing an edit
        if "edit" in options:
            outgoing = edited(outgoing, options["edit"])
        tunnel = next((t for t in self.tunnels() if t.name == exchange.tunnel), None)
        if tunnel_name and tunnel is None:
            tunnel = next((t for t in self.tunnels() if t.name == tunnel_name), None)
        secrets = {**(tunnel.webhook_secrets if tunnel else {}), **self.webhook_secrets}
        secrets.update(options.get("webhook_secrets") or {})
        notes = resign(
            outgoing,
            secrets,
            body_redacted=from_store and MARKER.encode() in outgoing.body,
            captured=captured,
        )
        context = None
        if tunnel is not None and tunnel.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        target = options.get("target") or (tunnel.addr if tunnel and not exchange.target else None)
        done = await replay(
            exchange, outgoing, target=target, via_relay=bool(options.get("via_relay")),
            ssl_context=context, public_url=tunnel.public_url if tunnel else "",
        )  # fmt: skip
        new_id = await self._in_store(
            lambda s: store_replay(s, exchange, done, self.redactor, self.settings.body_cap)
        )
        if self.writer is not None:
            head = done.sent[: done.sent.index(b"\r\n\r\n") + 4]
            self.writer.originals.put(new_id, OriginalRequest(head, outgoing.body, False))
        return {
            "id": str(new_id),
            "replay_of": str(exchange_id),
            "url": done.url,
            "status_code": done.record.status,
            "duration": int(done.record.duration_ms * 1e6),
            "sent_original": not from_store,
            "notes": notes,
        }


def _id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ApiError(404, f"no captured request {text!r} (ids are numbers)")
    return int(text)


def _filter(request: ApiRequest) -> Any:
    text = request.query.get("filter", "")
    try:
        return parse(text) if text else None
    except FilterError as exc:
        raise ApiError(400, f"bad filter: {exc}") from None
