"""The relay's public side: one visitor connection, routed by Host and bridged to an agent."""

from __future__ import annotations

import asyncio
import time
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
from relay.server import policy
from relay.server.access import client_key
from relay.server.answers import frame_answers
from relay.server.policy import Refusal
from relay.server.visitor import Visitor

if TYPE_CHECKING:
    from relay.server.agent_session import AgentSession


class PublicConnection(Visitor):
    """A visitor's connection. Until its first request head arrives it has no stream.

    Every request is checked before any of its bytes leave (the tunnel's rules, the client's
    share of the tunnel), and the bytes of one request only ever go to that request's stream:
    what a read holds of an earlier request is flushed to the earlier stream before a later
    head may move the connection to another tunnel. Responses are framed before they are
    written, so only what answers a request reaches the visitor.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername") or ("", 0)
        self.client_ip, self.client_port = str(peer[0]), int(peer[1])
        if transport.get_extra_info("sslcontext") is not None:
            self.proto = "https"
        relay = self.relay
        relay.public_connections.add(self)
        self.trusted_peer = relay.trusted(self.client_ip)
        self.address_key = client_key(self.client_ip, relay.settings.ipv6_prefix)
        if not self.trusted_peer:  # a proxy carries many visitors: it is not one of them
            count = relay.count_address(self.address_key)
            limit = relay.settings.connections_per_ip
            if limit and count > limit:
                self._log_refusal(Refusal(pages.too_many_connections(self.client_ip), "per_ip"))
                self.reject(pages.too_many_connections(self.client_ip))
                return
        self.deadline.arm("head", relay.settings.head_timeout)

    # -- requests: visitor -> agent --------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        if self.stopped:
            return  # a refusal waits for earlier answers; nothing after it is read
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
        if not self.stopped:
            self._after_read()

    def _relay_requests(self, items: list[Item]) -> None:
        out: list[bytes] = []
        for item in items:
            kind = type(item)
            if kind is bytes:
                out.append(item)  # type: ignore[arg-type]
            elif item is MESSAGE_END:
                self.request_open = False
            else:
                forwarded = self._admit(item, out)  # type: ignore[arg-type]
                if forwarded is None:
                    return  # refused: what came before went out, nothing after does
                out.append(forwarded)
                self.request_open = True
        if out:
            self._send(out)

    def _send(self, out: list[bytes]) -> None:
        """Forward what ``out`` holds to the current stream (it all belongs there) and empty it."""
        if out and self.session is not None and not self.finished:
            self.forward(out[0] if len(out) == 1 else b"".join(out))
        out.clear()

    def _admit(self, head: RequestHead, out: list[bytes]) -> bytes | None:
        """Check one request head; return it as forwarded, or None once it is refused.

        ``out`` holds bytes of earlier requests, not sent yet: they go to their own stream
        before this head may refuse, or move the connection to another tunnel.
        """
        self.page_head = head
        self.head_only = head.method == "HEAD"
        host = head.host
        if host is None:  # the framer refuses these; never route a request by a guess
            self._send(out)
            self._refuse(Refusal(pages.bad_request("The request has no Host header."), "no_host"))
            return None
        session = self.session
        moving = session is None or not (
            host == self.first_host
            or tunnel_from_host(host, self.relay.settings.domain) == self.tunnel
        )
        if moving:
            relay = self.relay
            found = policy.tunnel_for(host, relay.settings.domain, relay.routes, relay.held)
            if isinstance(found, Refusal):
                if head.upgrade and found.rule == "no_tunnel_in_host":  # an agent, misdirected?
                    agents = ("wss" if self.relay.ssl else "ws", self.relay.agents_port)
                    found = Refusal(pages.agents_elsewhere(host, agents), "agent_at_public_port")
                self._send(out)
                self._refuse(found, self.client_ip)
                return None
            target = found
            name = target.name or ""
            if target.protocol != "http":  # a TCP tunnel's name: it has no HTTP side
                self._send(out)
                self._refuse(Refusal(pages.unknown_tunnel(name, relay.settings.domain), "tcp"))
                return None
        else:
            target = session
            name = self.tunnel
        if self.trusted_peer:
            client, chain = policy.client_and_chain(head, self.client_ip, self.relay.trusted)
        else:
            client = chain = self.client_ip
        if target.checks:
            refusal = policy.check_request(target.rules, target.bucket, name, client, head)
            if refusal is not None:
                self._send(out)
                self._refuse(refusal, client, name)
                return None
        if moving:
            self._send(out)
            refusal = self._take_stream(target, name, client, host)
            if refusal is not None:
                self._refuse(refusal, client, name)
                return None
        elif (
            self.trusted_peer and client_key(client, self.relay.settings.ipv6_prefix) != self.owner
        ):
            # A proxy's connection now carries another client (any other connection's client
            # is its peer, counted when its stream was taken).
            refusal = self._count_for(target, name, client)
            if refusal is not None:
                self._send(out)
                self._refuse(refusal, client, name)
                return None
        self.relay.requests += 1
        self.responses.expect_response_to(head.method, head.upgrade)
        self.started.append(time.perf_counter())
        if self.trusted_peer:
            return forwarded_head(
                head,
                chain,
                header_value(head, b"x-forwarded-proto") or self.proto,
                header_value(head, b"x-forwarded-host") or host,
            )
        return forwarded_head(head, client, self.proto)

    def _take_stream(
        self, target: AgentSession, name: str, client: str, host: str
    ) -> Refusal | None:
        """Leave the current stream (nothing is in flight on it) and open one on ``target``."""
        if self.session is not None:
            if self.responses.pending_responses or not self.responses.between_messages:
                # Answers from the other tunnel are still due: they go out, then this page.
                return Refusal(pages.misdirected(self.tunnel), "misdirected")
            self.detach_stream("moved")
            self.forget()
            self.session = None
            self.responses = Http1Framer("response")
            self.responses_opaque = False
        settings = self.relay.settings
        if len(target.streams) >= settings.streams_per_agent:
            return Refusal(pages.tunnel_busy(name), "streams_per_agent")
        refusal = policy.share_refusal(target.client_streams, settings, name, client)
        if refusal is not None:
            return refusal
        if not target.attach(self, client):
            return Refusal(pages.tunnel_busy(name), "streams_per_agent")
        self.session = target
        self.tunnel = name
        self.first_host = host
        self.owner = client_key(client, settings.ipv6_prefix)
        policy.count(target.client_streams, self.owner, 1)
        return None

    def _count_for(self, session: AgentSession, name: str, client: str) -> Refusal | None:
        """Count this connection's stream against ``client`` from now on, if its share allows."""
        counts = session.client_streams
        refusal = policy.share_refusal(counts, self.relay.settings, name, client)
        if refusal is None:
            if self.owner:
                policy.count(counts, self.owner, -1)
            self.owner = client_key(client, self.relay.settings.ipv6_prefix)
            policy.count(counts, self.owner, 1)
        return refusal

    def eof_received(self) -> bool:
        if self.session is None or self.finished:
            return False  # nothing to relay: let asyncio close the socket
        framer = self.framer
        tunnelled = framer.raw or framer.waiting_for_upgrade or self.responses.raw
        if self._quiet() and not (tunnelled or self.held or self.responses_opaque):
            # Closed between requests: nothing is owed either way, so the connection is over
            # now, not once the agent's END comes back (a frozen node, or an app that ignores
            # the EOF, would keep it counted against the visitor's address). A half-close
            # while an answer is due still gets the answer (the branch below).
            self._end_stream("visitor_closed", "the visitor closed its connection")
            return False
        return super().eof_received()

    # -- responses: agent -> visitor -------------------------------------------------------------

    def on_data(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        super().on_data(data)  # accounts for the bytes, then write() frames them
        if self.framer.waiting_for_upgrade and self.responses.raw:
            self.forward_held(self.framer.upgrade_accepted())

    def write(self, data: bytes) -> None:
        """Write the app's bytes to the visitor: only what the response framing accounts for."""
        transport = self.transport
        assert transport is not None
        if self.responses.raw or self.responses_opaque:
            transport.write(data)
            return
        try:
            answers = frame_answers(self.responses, data)
        except HttpError as exc:
            # Not HTTP we can frame: pass it on as it came, but no answer after it could be
            # matched to its request, so the connection takes no more requests.
            self.responses_opaque = self.stopped = True
            self.relay.log_event("response_unframed", tunnel=self.tunnel, error=exc.message)
            transport.write(data)
            return
        if answers.data:
            transport.write(answers.data)
        for head in answers.heads:
            self._on_response(head)
        if answers.dropped:
            self._unsolicited(answers.dropped)
        elif answers.ended:
            self._response_done()

    def _on_response(self, head: ResponseHead) -> None:
        self.relay.count_response(head.status)
        if (head.status >= 200 or head.status == 101) and self.started:
            self.relay.durations.observe(time.perf_counter() - self.started.popleft())
        if head.answers_upgrade and head.status != 101 and not self.stopped:
            try:
                items = self.framer.upgrade_refused()
            except HttpError as exc:
                self._bad_request(exc)
                return
            self._relay_requests(items)
            if not self.stopped:
                self._after_read()

    def forward_held(self, held: bytes) -> None:
        if held and not self.finished:
            self.forward(held)

    def idle_out(self) -> None:
        """No bytes either way for the relay's idle timeout: close (the agent is told)."""
        if self.session is not None and not self.finished:
            self.reset("idle_timeout", "no traffic either way for the idle timeout")
        elif self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.deadline.cancel()
        relay = self.relay
        relay.public_connections.discard(self)
        relay.bytes_in += self.bytes_from_socket
        relay.bytes_out += self.bytes_to_socket
        if not self.trusted_peer:  # a proxy's connections were never counted per address
            relay.uncount_address(self.address_key)
        if self.session is not None:
            super().connection_lost(exc)  # a stream still open is reset: the agent lets go
        self.finished = True
