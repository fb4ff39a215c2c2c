"""Passive observation of one tunnelled connection: pairs requests with responses and times them.

The observer never changes a byte. It frames both directions with :class:`Http1Framer` and turns
each completed exchange into a :class:`RequestRecord`. If a direction stops being valid HTTP
(a local app that speaks something else), the observer gives up quietly: the bytes still flow.

Timing costs a few clock reads per exchange, never per byte: the head's arrival (and its wall
time), the response head, the end. The local app's time starts when the request head could be
written to its socket: on arrival, or when the connection to the app was made if the head came
while it was being dialled (one clock read per connection). What the agent adds around the app
(the dial, mostly) is the duration less the app's time.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from relay.agent.failures import dial_failure, lost_failure
from relay.agent.observe_messages import MessageWatch
from relay.events import Capture, MessageLog, RequestRecord
from relay.http.framing import MESSAGE_END, Http1Framer, HttpError, Item, RequestHead, ResponseHead

_perf = time.perf_counter
_new = object.__new__
_EVENT_STREAM = b"event-stream"
# Requests of one connection awaiting their responses that the observer follows, by count and
# by the bytes of their heads. A client (or a relay that is not ours) that pipelines tiny
# requests faster than the app answers them cost ~400 bytes of records per 27-byte request: 8
# MiB of them held 116 MB, without end. Past either bound the observer gives up on the
# connection, quietly, as it does with bytes that are not HTTP: the bytes still flow.
MAX_PENDING = 64
MAX_PENDING_BYTES = 256 * 1024


class _Pending:
    __slots__ = (
        "bytes_in",
        "head",
        "messages",
        "request_body",
        "request_cut",
        "response_body",
        "response_cut",
        "response_head",
        "started",
        "ttfb",
        "wall",
    )

    def __init__(self, head: RequestHead) -> None:
        self.head = head
        self.started = _perf()
        self.wall = time.time()
        self.bytes_in = len(head.raw)
        self.ttfb: float | None = None
        # What the Capture will hold (with captures on), made once the exchange completes: one
        # object per exchange, its fields set once (round 5: a Capture made at the request
        # head and filled in as the exchange went cost twice as much).
        self.response_head = b""
        self.request_cut = self.response_cut = False
        self.messages: MessageLog | None = None
        # Captured bodies grow in place and become bytes once, when the exchange completes:
        # ``bytes +=`` per chunk copied the whole body each time (quadratic: a 10 MiB body in
        # 64 KiB reads copied ~800 MB and cut a download's throughput five times). A body that
        # came in one piece (most do) is kept as that piece: no bytearray, no copy.
        self.request_body: bytes | bytearray = b""
        self.response_body: bytes | bytearray = b""


class ExchangeObserver:
    """Feed it the request bytes and the response bytes of one connection."""

    def __init__(
        self,
        client: str,
        stream: int,
        emit: Callable[[RequestRecord], None],
        capture_bytes: int = 0,
        local: str = "",
        message_cap: int = 0,
    ) -> None:
        self.client = client
        self.local = local  # the local app's address, for the words of a failure
        self.stream = stream
        self.emit = emit
        self.capture_bytes = capture_bytes
        # The relay has validated every request it forwards: the observer only reads them.
        self.requests = Http1Framer("request", strict=False)
        self.responses = Http1Framer("response")
        self.pending: deque[_Pending] = deque()  # requests awaiting their response
        self.pending_bytes = 0  # the bytes of their heads
        self.reading: _Pending | None = None  # the request whose body is arriving
        self.answering: _Pending | None = None  # the exchange whose response is arriving
        self.bytes_out = 0
        self.status = 0
        self.broken = False
        self.connected_at = 0.0  # perf_counter when the local app accepted (0: before anything)
        # WebSocket messages after a 101, or an event stream's events (with captures only).
        self.message_cap = message_cap
        self.watch: MessageWatch | None = None

    def connected(self) -> None:
        """The local app accepted the connection: heads that waited are written now."""
        self.connected_at = _perf()

    def request_bytes(self, data: bytes) -> None:
        if self.broken or self.requests.raw:
            if self.watch is not None and self.requests.raw:
                self.watch.client_bytes(data)
            return
        try:
            items = self.requests.receive(data)
        except HttpError:
            self.broken = True
            return
        self._requests(items)

    def _requests(self, items: list[Item]) -> None:
        for item in items:
            kind = type(item)
            if kind is bytes:
                reading = self.reading
                if reading is not None:
                    reading.bytes_in += len(item)  # type: ignore[arg-type]
                    if self.capture_bytes:
                        self._keep(reading, item, request=True)  # type: ignore[arg-type]
            elif item is MESSAGE_END:
                self.reading = None
            else:
                head: RequestHead = item  # type: ignore[assignment]
                self.pending_bytes += len(head.raw)
                if len(self.pending) >= MAX_PENDING or self.pending_bytes > MAX_PENDING_BYTES:
                    self.broken = True
                    return
                exchange = _Pending(head)
                self.reading = exchange
                self.pending.append(exchange)
                self.responses.expect_response_to(head.method, head.upgrade)

    def response_bytes(self, data: bytes) -> None:
        if self.broken or self.responses.raw:
            if self.watch is not None and self.responses.raw:
                self.watch.server_bytes(data)
            return
        try:
            items = self.responses.receive(data)
        except HttpError:
            self.broken = True
            return
        self._responses(items)

    def response_eof(self) -> None:
        if not self.broken:
            self._responses(self.responses.eof())

    def _responses(self, items: list[Item]) -> None:
        for item in items:
            kind = type(item)
            if kind is bytes:
                data: bytes = item  # type: ignore[assignment]
                self.bytes_out += len(data)
                ex = self.answering
                if ex is not None and self.capture_bytes:
                    if not ex.response_body and len(data) <= self.capture_bytes:
                        ex.response_body = data  # most bodies: one piece, kept as it is
                    else:
                        self._keep(ex, data, request=False)
                if self.watch is not None:  # an event stream's body, or the bytes after a 101
                    self.watch.server_bytes(data)
            elif item is MESSAGE_END:
                ex = self.answering
                if ex is not None:
                    self._end_messages()
                    self._complete(ex)
                    self.answering = None
            elif kind is ResponseHead and self.pending:  # Unsolicited bytes answer nothing
                self._response_head(item)  # type: ignore[arg-type]

    def _response_head(self, head: ResponseHead) -> None:
        ex = self.pending[0]
        if ex.ttfb is None:
            ex.ttfb = _perf()
        self.bytes_out += len(head.raw)
        status = head.status
        if 100 <= status < 200 and status != 101:
            return  # interim response: the real one follows
        self.pending_bytes -= len(self.pending.popleft().head.raw)
        self.status = status
        # Most responses are neither a 101 nor an event stream: a lowered copy of the head rules
        # that out for a tenth of the header regex's cost. partition, not `in` (which tries the
        # needle as an int first and makes an exception) nor find (which parses its arguments
        # as a tuple): half the cost again.
        if (
            self.capture_bytes
            and self.message_cap
            and (status == 101 or head.raw.lower().partition(_EVENT_STREAM)[1])
        ):
            self.watch = MessageWatch.of_response(head.raw, status, self.message_cap)
            if self.watch is not None:
                ex.messages = self.watch.log
        if head.answers_upgrade:
            self._upgrade_answered(status == 101)
        ex.response_head = head.raw
        if status == 101 or self.responses.raw:
            self._complete(ex)  # switched protocols: the exchange is done
        else:
            self.answering = ex

    def _upgrade_answered(self, accepted: bool) -> None:
        if accepted:
            held = self.requests.upgrade_accepted()  # the rest is the new protocol
            if self.watch is not None and held:
                self.watch.client_bytes(held)  # what the client sent before the 101 came
            return
        try:
            self._requests(self.requests.upgrade_refused())
        except HttpError:
            self.broken = True

    def _complete(self, ex: _Pending, failure: tuple[str, str] = ("", "")) -> None:
        now = _perf()
        head = ex.head
        capture = None
        if self.capture_bytes:
            # Made without its __init__ (a Python frame entered from C, keywords parsed): each
            # field set once, here, at a third less of the cost.
            capture = _new(Capture)
            capture.request_head = head.raw
            capture.response_head = ex.response_head
            body = ex.request_body
            capture.request_body = body if type(body) is bytes else bytes(body)
            body = ex.response_body
            capture.response_body = body if type(body) is bytes else bytes(body)
            capture.request_truncated = ex.request_cut
            capture.response_truncated = ex.response_cut
            capture.messages = ex.messages
        ttfb = ex.ttfb
        if ttfb is None:
            ttfb_ms = app_ttfb_ms = app_ms = overhead_ms = None
        else:
            sent = ex.started if ex.started > self.connected_at else self.connected_at
            ttfb_ms = (ttfb - ex.started) * 1000.0
            app_ttfb_ms = (ttfb - sent) * 1000.0
            app_ms = (now - sent) * 1000.0
            overhead_ms = (sent - ex.started) * 1000.0
        self.emit(
            RequestRecord(
                time=ex.wall,
                method=head.method,
                path=head.target.decode("latin-1"),
                status=self.status,
                duration_ms=(now - ex.started) * 1000.0,
                bytes_in=ex.bytes_in,
                bytes_out=self.bytes_out,
                client=self.client,
                stream=self.stream,
                http_version=head.version,
                ttfb_ms=ttfb_ms,
                capture=capture,
                app_ttfb_ms=app_ttfb_ms,
                app_ms=app_ms,
                overhead_ms=overhead_ms,
                failure_kind=failure[0],
                failure=failure[1],
            )
        )
        self.bytes_out = 0

    def close(self, status: int = 0, failure: tuple[str, str] = ("", "")) -> None:
        """The connection ended: report exchanges that never got (all of) a response.

        ``status`` is what the visitor was shown instead (502 when the local app refused);
        ``failure`` (kind, sentence) says why, when the local app is the cause.
        """
        self._end_messages()
        if self.answering is not None:
            self._complete(self.answering, failure)
            self.answering = None
        while self.pending:
            self.status = status
            self._complete(self.pending.popleft(), failure)
        self.pending_bytes = 0

    def dial_failed(self, exc: OSError, timeout: float) -> tuple[str, str]:
        """The local app could not be reached: every request waiting gets a 502 that says why."""
        failure = dial_failure(exc, self.local, timeout)
        self.close(502, failure)
        return failure

    def lost(self, exc: BaseException | None) -> None:
        """The connection to the local app ended; what was still unanswered failed because of it."""
        self._end_messages()
        if self.answering is None and not self.pending:
            return  # the usual case: everything was answered
        self.close(0, lost_failure(exc, self.local, self.answering is not None))

    def _end_messages(self) -> None:
        if self.watch is not None:
            self.watch.log.closed = True
            self.watch = None

    def _keep(self, ex: _Pending, data: bytes, request: bool) -> None:
        body = ex.request_body if request else ex.response_body
        room = self.capture_bytes - len(body)
        if room > 0:
            piece = data if len(data) <= room else data[:room]
            if not body:
                body = piece  # the first piece as it is (a bytes object nobody changes)
            elif type(body) is bytes:
                body = bytearray(body)
                body += piece
            else:
                body += piece
            if request:
                ex.request_body = body
            else:
                ex.response_body = body
        if len(data) > room:
            if request:
                ex.request_cut = True
            else:
                ex.response_cut = True
