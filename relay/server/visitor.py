"""What a visitor's connection does whatever it carries: its deadlines, and the pages with
which the relay refuses a request (after the answers to earlier requests are out)."""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

from relay.http import pages as pages
from relay.http.framing import Http1Framer, HttpError, RequestHead, header_value
from relay.server import policy
from relay.server.deadline import Deadline
from relay.server.policy import Refusal
from relay.transport.bridge import StreamBridge

if TYPE_CHECKING:
    from relay.server import Relay
    from relay.server.agent_session import AgentSession


class Visitor(StreamBridge):
    """A visitor's connection: state and refusals; :class:`PublicConnection` routes it."""

    def __init__(self, relay: Relay) -> None:
        # The stream fields are filled in once the first request names a live tunnel.
        super().__init__(None, None)
        self.relay = relay
        self.session: AgentSession | None = None
        self.framer = Http1Framer(
            "request", max_head=relay.settings.max_head, max_headers=relay.settings.max_headers
        )
        self.responses = Http1Framer("response")
        self.responses_opaque = False  # the local app answered with something not HTTP
        self.client_ip = ""
        self.client_port = 0
        # The latest request: its Accept picks a page's form (HTML or text).
        self.page_head: RequestHead | None = None
        self.head_only = False  # the page answers a HEAD request: no body
        self.tunnel = ""
        self.first_host: str | None = None
        self.proto = "http"
        self.trusted_peer = False  # the peer is a configured proxy: its X-Forwarded-* count
        self.owner = ""  # the client address this connection's stream is counted against
        self.request_open = False  # a request's body is still arriving
        self.stopped = False  # no more requests are read: the connection ends after its answers
        self.refusal: Refusal | None = None  # answered once the responses before it are out
        self.last_active = time.monotonic()
        self.started: deque[float] = deque()  # when each unanswered request was forwarded
        # "head": a request head must complete; "keepalive": idle between requests.
        self.deadline = Deadline(self._on_deadline)

    # -- deadlines -------------------------------------------------------------------------------

    def _on_deadline(self, kind: str) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if kind == "head":
            self._refuse(Refusal(pages.request_timeout(), "head_timeout"), self.client_ip)
        else:  # idle between requests: close quietly, as a server may (RFC 9112 9.6)
            self._end_stream("keepalive_timeout", "the visitor's connection was idle")
            transport.close()

    def _after_read(self) -> None:
        """Pick the deadline for what the connection waits for now."""
        framer = self.framer
        deadline = self.deadline
        if self.request_open or framer.raw or framer.waiting_for_upgrade:
            deadline.clear()  # a body or a tunnelled protocol: idle_timeout covers it
        elif not framer.between_messages:
            if deadline.kind != "head":  # a head began: it has head_timeout to complete
                deadline.arm("head", self.relay.settings.head_timeout)
        elif self.session is not None:
            if not self._quiet():
                deadline.clear()
            elif deadline.kind != "keepalive":
                deadline.arm("keepalive", self.relay.settings.keepalive_timeout)

    def _quiet(self) -> bool:
        """Nothing in progress either way: an idle keep-alive connection."""
        responses = self.responses
        return (
            not self.request_open
            and self.framer.between_messages
            and not responses.pending_responses
            and responses.between_messages
        )

    # -- refusals --------------------------------------------------------------------------------

    def _refuse(self, refusal: Refusal, client: str = "", tunnel: str = "") -> None:
        """Answer with a page once the answers to earlier requests are out; read no more."""
        self._log_refusal(refusal, client, tunnel)
        self.stopped = True
        self.deadline.clear()
        responses = self.responses
        if self.session is None or self.finished or self.responses_opaque:
            self.reject(refusal.page)
        elif responses.pending_responses or not responses.between_messages:
            self.refusal = refusal  # sent by _response_done
        else:
            self.reject(refusal.page)

    def _log_refusal(self, refusal: Refusal, client: str = "", tunnel: str = "") -> None:
        self.relay.log_event(
            "request_refused",
            status=refusal.page.status,
            rule=refusal.rule,
            tunnel=tunnel or self.tunnel or None,
            client=client or self.client_ip,
        )

    def _bad_request(self, exc: HttpError) -> None:
        refusal = Refusal(pages.for_http_error(exc.status, exc.message), f"http_{exc.status}")
        self.head_only = False  # the page answers a request that could not be read
        responses = self.responses
        if self.request_open and (
            responses.pending_responses > 1 or not responses.between_messages
        ):
            # A body was arriving and an answer is under way: the app waits for the rest of a
            # body that will not come, so no page can follow the answers in order. Cut.
            self._log_refusal(refusal)
            self.stopped = True
            self.reset("bad_request", exc.message)
        elif self.request_open:
            self._log_refusal(refusal)
            self.reject(refusal.page)  # the broken request is the only one: answer it now
        else:
            self._refuse(refusal)

    def reject(self, page: pages.ErrorPage) -> None:
        """Answer with an error page and close; any stream is reset."""
        self.stopped = True
        self._end_stream(f"http_{page.status}", page.title)
        self.relay.errors += 1
        transport = self.transport
        if transport is not None and not transport.is_closing():
            # After the app closed its end the visitor's side is at EOF already (a bad chunk
            # after an early answer): the page cannot follow, the connection just closes.
            if not self.wrote_eof:
                head = self.page_head
                accept = header_value(head, b"accept") if head is not None else ""
                transport.write(page.render(accept, self.head_only))
            transport.close()

    def _end_stream(self, code: str, message: str) -> None:
        """Reset the stream (the agent closes its end) but keep our socket for a last word."""
        if self.session is not None and not self.finished:
            self.link.reset_stream(self.stream, code, message)
            self.forget()
        self.finished = True

    def _unsolicited(self, size: int) -> None:
        self.relay.log_event(
            "response_dropped", tunnel=self.tunnel, bytes=size, reason="no request awaits it"
        )
        self.stopped = True
        self._end_stream("unsolicited_response", "response bytes beyond the response's framing")
        if self.transport is not None:
            self.transport.close()  # after what was written: the answers that were asked for

    def _response_done(self) -> None:
        refusal = self.refusal
        responses = self.responses
        if refusal is not None:
            if not responses.pending_responses and responses.between_messages:
                self.refusal = None
                self.reject(refusal.page)
        elif not self.stopped and self._quiet() and self.deadline.kind != "keepalive":
            self.deadline.arm("keepalive", self.relay.settings.keepalive_timeout)

    def on_reset(self, code: str, message: str) -> None:
        # A page can go out only where it is a whole answer to a request: one is awaited, and
        # no response is under way.
        responses = self.responses
        if (
            not self.got_end
            and self.transport is not None
            and responses.pending_responses
            and responses.between_messages
            and not responses.raw
        ):
            if code == "connect_failed":
                self.finished = True
                self.forget()
                self.reject(policy.app_down_page(self.tunnel, message, self.relay.settings))
                return
            if code == "session_lost":
                self.finished = True
                self.forget()
                self.reject(pages.tunnel_offline(self.tunnel))
                return
        super().on_reset(code, message)

    def forget(self) -> None:
        session = self.session
        if session is not None:
            session.detach(self.sid)
            if self.owner:
                policy.count(session.client_streams, self.owner, -1)
                self.owner = ""
