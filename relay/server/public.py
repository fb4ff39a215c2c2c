"""The relay's public side: one visitor connection, routed by Host and bridged to an agent."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING

from relay.http import pages as pages
from relay.http.framing import (
    MESSAGE_END,
    Http1Framer,
    HttpError,
    Item,
    RequestHead,
    ResponseHead,
    forwarded_head,
    header_value,
)
from relay.http.names import tunnel_from_host
from relay.transport.bridge import StreamBridge

if TYPE_CHECKING:
    from relay.server import Relay
    from relay.server.agent_session import AgentSession


class PublicConnection(StreamBridge):
    """A visitor's connection. Until its first request head arrives it has no stream."""

    def __init__(self, relay: Relay) -> None:
        # The stream fields are filled in once the first request names a live tunnel.
        super().__init__(None, None)
        self.relay = relay
        self.session: AgentSession | None = None
        self.framer = Http1Framer(
            "request", max_head=relay.settings.max_head, max_headers=relay.settings.max_headers
        )
        # The responses are framed too: to see whether an upgrade was accepted (only a 101
        # turns the connection raw) and to count answers by status class.
        self.responses = Http1Framer("response")
        self.responses_opaque = False  # the local app answered with something not HTTP
        self.client_ip = ""
        self.client_port = 0
        self.accept = ""  # the first request's Accept header, to pick the error page's form
        self.head_only = False
        self.tunnel = ""
        self.first_host: str | None = None
        self.proto = "http"
        self.trusted_peer = False  # the peer is a configured proxy: its X-Forwarded-* count
        self.last_active = time.monotonic()
        self.started: deque[float] = deque()  # when each unanswered request was forwarded
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername") or ("", 0)
        self.client_ip, self.client_port = str(peer[0]), int(peer[1])
        if transport.get_extra_info("sslcontext") is not None:
            self.proto = "https"
        relay = self.relay
        relay.public_connections.add(self)
        self.trusted_peer = relay.trusted(self.client_ip)
        if not self.trusted_peer:  # a proxy carries many visitors: it is not one of them
            count = relay.per_ip.get(self.client_ip, 0) + 1
            relay.per_ip[self.client_ip] = count
            limit = relay.settings.connections_per_ip
            if limit and count > limit:
                self.reject(pages.too_many_connections(self.client_ip))
                return
        timeout = relay.settings.head_timeout
        if timeout:
            self._head_timer = asyncio.get_running_loop().call_later(timeout, self._head_timeout)

    def _head_timeout(self) -> None:
        if self.session is None and not self.finished:
            self.reject(pages.request_timeout())

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        framer = self.framer
        if framer.raw and self.session is not None:
            self.forward(data)
            return
        try:
            items = framer.receive(data)
        except HttpError as exc:
            self._bad_request(exc)
            return
        self._relay_requests(items)

    def _relay_requests(self, items: list[Item]) -> None:
        out: list[bytes] = []
        for item in items:
            kind = type(item)
            if kind is bytes:
                out.append(item)  # type: ignore[arg-type]
            elif item is MESSAGE_END:
                continue
            else:
                head: RequestHead = item  # type: ignore[assignment]
                if self.session is None and not self._route(head):
                    return
                if not self._same_tunnel(head):
                    return
                if self.trusted_peer:
                    forwarded = self._from_proxy(head)
                    if forwarded is None:
                        return
                else:
                    session = self.session
                    if session.checks and not self._allowed(head, self.client_ip):  # type: ignore[union-attr]
                        return
                    forwarded = forwarded_head(head, self.client_ip, self.proto)
                self.relay.requests += 1
                self.responses.expect_response_to(head.method, head.upgrade)
                self.started.append(time.perf_counter())
                out.append(forwarded)
        if out and not self.finished:
            self.forward(out[0] if len(out) == 1 else b"".join(out))

    def _route(self, head: RequestHead) -> bool:
        """Open a stream to the tunnel the first request names; answer with a page if we can't."""
        if self._head_timer is not None:
            self._head_timer.cancel()
        self.accept = header_value(head, b"accept")
        self.head_only = head.method == "HEAD"
        domain = self.relay.settings.domain
        if head.host is None:
            self.reject(pages.bad_request("The request has no Host header."))
            return False
        name = tunnel_from_host(head.host, domain)
        if name is None:
            self.reject(pages.no_tunnel_in_host(head.host, domain))
            return False
        session = self.relay.tunnels.get(name)
        if session is None:
            if name in self.relay.leases:
                self.reject(pages.tunnel_offline(name))
            else:
                self.reject(pages.unknown_tunnel(name, domain))
            return False
        self.tunnel = name
        self.first_host = head.host
        if not session.attach(self):
            self.reject(pages.tunnel_busy(name))
            return False
        self.session = session
        return True

    def _from_proxy(self, head: RequestHead) -> bytes | None:
        """A trusted proxy's request: its X-Forwarded-* are carried on; rules use its client."""
        chain = header_value(head, b"x-forwarded-for")
        hops = [h.strip() for h in chain.split(",") if h.strip()]
        client = next((h for h in reversed(hops) if not self.relay.trusted(h)), self.client_ip)
        session = self.session
        if session is not None and session.checks and not self._allowed(head, client):
            return None
        return forwarded_head(
            head,
            f"{chain}, {self.client_ip}" if chain else self.client_ip,
            header_value(head, b"x-forwarded-proto") or self.proto,
            header_value(head, b"x-forwarded-host") or head.host,
        )

    def _allowed(self, head: RequestHead, client: str) -> bool:
        """The tunnel's rules for one request: address, basic auth, rate. Refuses if not."""
        session = self.session
        assert session is not None
        rules = session.rules
        if not rules.ip_allowed(client):
            self._refuse(pages.forbidden(self.tunnel, client))
            return False
        if rules.basic_auth is not None and not rules.authorized(
            header_value(head, b"authorization").encode("latin-1")
        ):
            self._refuse(pages.unauthorized(self.tunnel))
            return False
        if session.bucket is not None and not session.bucket.take():
            self._refuse(pages.too_many_requests(self.tunnel))
            return False
        return True

    def _refuse(self, page: pages.ErrorPage) -> None:
        """Answer one request with a page, if no earlier answer is still on its way."""
        self.accept = self.accept or ""
        if self.responses.pending_responses or not self.responses.between_messages:
            self.reset(f"http_{page.status}", page.title)
        else:
            self.reject(page)

    def _same_tunnel(self, head: RequestHead) -> bool:
        host = head.host
        if host is None or host == self.first_host:
            return True  # the common case costs one string comparison
        if tunnel_from_host(host, self.relay.settings.domain) == self.tunnel:
            return True
        # A later request names another tunnel (a proxy pooling connections, a client that
        # sets Host by hand). With nothing in flight, move the connection over, as a proxy
        # would; with answers still on their way it cannot be done cleanly: the connection ends.
        if self.responses.pending_responses or not self.responses.between_messages:
            self.reset("misdirected", "a request named another tunnel")
            return False
        self.detach_stream("moved")
        self.session = None
        self.responses = Http1Framer("response")
        return self._route(head)

    def _bad_request(self, exc: HttpError) -> None:
        if exc.status == 431:
            page = pages.headers_too_large(exc.message)
        elif exc.status == 505:
            page = pages.version_not_supported(exc.message)
        else:
            page = pages.bad_request(exc.message)
        if self.session is not None and self.bytes_to_socket:
            self.reset("bad_request", exc.message)  # a response is under way: just cut it
        else:
            self.reject(page)

    def reject(self, page: pages.ErrorPage) -> None:
        """Answer with an error page and close; any stream is reset."""
        if self.session is not None and not self.finished:
            # Tell the agent, but keep our socket: the page still has to reach the visitor.
            self.link.reset_stream(self.stream, f"http_{page.status}", page.title)
            self.forget()
        self.finished = True
        self.relay.errors += 1
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(page.render(self.accept, self.head_only))
            transport.close()

    def eof_received(self) -> bool:
        if self.session is None or self.finished:
            return False  # nothing to relay: let asyncio close the socket
        return super().eof_received()

    # -- stream events from the agent ------------------------------------------------------------

    def on_data(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        super().on_data(data)  # to the visitor first: the response's framing is bookkeeping
        responses = self.responses
        if not responses.raw and not self.responses_opaque:
            try:
                items = responses.receive(data)
            except HttpError:
                self.responses_opaque = True  # keep relaying; stop interpreting
                items = []
            for item in items:
                if type(item) is ResponseHead:
                    self._on_response(item)
        if self.framer.waiting_for_upgrade and responses.raw:
            self.forward_held(self.framer.upgrade_accepted())

    def _on_response(self, head: ResponseHead) -> None:
        self.relay.count_response(head.status)
        if (head.status >= 200 or head.status == 101) and self.started:
            self.relay.durations.observe(time.perf_counter() - self.started.popleft())
        if head.answers_upgrade and head.status != 101:
            try:
                items = self.framer.upgrade_refused()
            except HttpError as exc:
                self._bad_request(exc)
                return
            self._relay_requests(items)

    def forward_held(self, held: bytes) -> None:
        if held and not self.finished:
            self.forward(held)

    def on_reset(self, code: str, message: str) -> None:
        # A page can only go out if nothing (not even our EOF) went to the visitor yet.
        if not self.bytes_to_socket and not self.got_end and self.transport is not None:
            if code == "connect_failed":
                self.finished = True
                self.forget()
                self.reject(pages.local_app_down(self.tunnel, message))
                return
            if code == "session_lost":
                self.finished = True
                self.forget()
                self.reject(pages.tunnel_offline(self.tunnel))
                return
        super().on_reset(code, message)

    def idle_out(self) -> None:
        """No bytes either way for the relay's idle timeout: close (the agent is told)."""
        if self.session is not None and not self.finished:
            self.reset("idle_timeout", "no traffic either way for the idle timeout")
        elif self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        relay = self.relay
        relay.public_connections.discard(self)
        relay.bytes_in += self.bytes_from_socket
        relay.bytes_out += self.bytes_to_socket
        if self.trusted_peer:
            return
        left = relay.per_ip.get(self.client_ip, 1) - 1
        if left > 0:
            relay.per_ip[self.client_ip] = left
        else:
            relay.per_ip.pop(self.client_ip, None)
        if self.session is not None:
            super().connection_lost(exc)
        self.finished = True

    def forget(self) -> None:
        if self.session is not None:
            self.session.detach(self.sid)
