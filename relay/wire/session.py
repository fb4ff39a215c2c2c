"""One side of a molehill session (sans-I/O): messages in, events out; commands in, messages out.

Theory of operation
-------------------
A session is one websocket between an agent and a relay (or, later, two relay nodes). Below it,
websockets' own sans-I/O protocol turns socket bytes into whole binary messages; above it, the
relay and the agent turn events into socket writes. This object holds every rule of the molehill
protocol, once, for both sides:

* **Order.** The agent's first message is one HELLO, alone, at most :data:`HELLO_MAX` bytes; the
  relay answers WELCOME or ERROR; nothing else moves until then. The relay checks the size
  before decoding anything, so an unauthenticated peer costs a few KiB at most.
* **Streams.** Only the relay (the *opener*) opens streams, with ids that only grow; a frame for an
  id never opened is an error, a frame for a stream that ended a moment ago is in flight and is
  ignored. Each stream's state and windows are a :class:`~relay.wire.stream.Stream`.
* **Leaving.** Either side may send GOAWAY once the session is open: the relay when it shuts
  down (the agent reconnects later), the agent when it stops on purpose (the relay frees the
  name at once). An agent's GOAWAY before the WELCOME, or a second one, breaks the protocol;
  after it, the relay opens no more streams to that agent.
* **Liveness.** PINGs are answered here, and limited: more than :data:`PING_BURST` in a burst (or
  above :data:`PING_RATE` a second on average) closes the session.

Input: :meth:`receive_message` takes one websocket message and returns the events it holds, as the
frame objects of :mod:`relay.wire.codec` (``Open``, ``Data``, ``End``, ``Reset``, ``Credit``,
``Hello``, ``Welcome``, ``Error``, ``Pong``, ``GoAway``): PINGs are answered, not returned. A rule
broken by the peer raises :class:`~relay.wire.codec.ProtocolError`; the caller closes the link.

Output: the command methods (:meth:`open_stream`, :meth:`send_data`, :meth:`end`, :meth:`reset`,
:meth:`consume`, ...) queue encoded frames; :meth:`data_to_send` returns them as the pieces of
one message (a msgpack array header, then the frames), so the caller can write a batch of frames
from every busy stream with one ``writev`` and no extra copy of the payloads.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Final

from relay.wire import codec as p
from relay.wire.stream import (
    Event,
    LocalStreamError,
    State,
    Stream,
    StreamError,
)

HELLO_MAX: Final = 32 * 1024  # the largest first message: a HELLO with 2 x 256 networks
PING_RATE: Final = 20.0  # PINGs a second, on average, that a peer may send
PING_BURST: Final = 100.0


class Side(enum.Enum):
    RELAY = "relay"  # accepts HELLO, opens streams
    AGENT = "agent"  # sends HELLO, accepts streams


class Phase(enum.Enum):
    GREETING = "greeting"  # no HELLO yet (relay) / no WELCOME yet (agent)
    ADMITTING = "admitting"  # relay: HELLO received, WELCOME or ERROR not sent yet
    OPEN = "open"
    CLOSED = "closed"  # refused, or told to go away and stopped


class Session:
    """See the module docstring. ``window``: what this side grants the peer per stream."""

    def __init__(
        self,
        side: Side,
        window: int = p.DEFAULT_WINDOW,
        *,
        max_message: int = p.MAX_MESSAGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.side = side
        self.window = window
        self.peer_window = p.DEFAULT_WINDOW  # what the peer grants us, from HELLO / WELCOME
        self.max_message = max_message
        self.phase = Phase.GREETING
        self._hello_sent = False
        self.goaway_sent = False
        self.goaway_received = False  # the peer said it is leaving (see the module docstring)
        self.error: p.ProtocolError | None = None  # a rule broken after valid frames, see _apply
        self.streams: dict[int, Stream] = {}
        self.next_id = 1  # relay: the next id to open; agent: the lowest id the relay may open
        self.decoder = p.FrameDecoder(max_message)
        self._clock = clock
        self._ping_tokens = PING_BURST
        self._ping_stamp: float = clock()
        self._out: list[bytes] = []
        self._frames = 0
        self._sealed: list[list[bytes]] = []  # full messages (MAX_FRAMES frames) not yet taken
        self.queued_bytes = 0  # payload bytes queued since the last data_to_send()

    # -- input -------------------------------------------------------------------------------

    def receive_message(self, message: bytes) -> list[p.Frame]:
        """Decode one websocket message and apply its frames; return the events.

        Raises ProtocolError for a broken rule; when valid frames came before the broken one,
        they are returned and the error is left in :attr:`error` (the session is then closed).
        """
        if self.error is not None:
            raise self.error
        if self.phase is Phase.GREETING and self.side is Side.RELAY and len(message) > HELLO_MAX:
            raise p.ProtocolError(f"first message larger than {HELLO_MAX} bytes: not a HELLO")
        if self.phase is Phase.GREETING and self.side is Side.RELAY:
            frames = self.decoder.decode(message, max_frames=1)  # refused at its header
        else:
            frames = self.decoder.decode(message)
        if self.phase is not Phase.OPEN:
            frames = self._greeting(frames)
            if self.phase is not Phase.OPEN or len(frames) == 1:
                return frames
            try:  # frames that followed the WELCOME in its message
                rest = self._apply(frames[1:])
            except p.ProtocolError as exc:
                self.error = exc  # the WELCOME stands; the error waits for the caller
                self.phase = Phase.CLOSED
                rest = []
            return [frames[0], *rest]
        return self._apply(frames)

    def _apply(self, frames: list[p.Frame]) -> list[p.Frame]:
        events: list[p.Frame] = []
        try:
            self._apply_into(frames, events)
        except p.ProtocolError as exc:
            if not events:
                raise
            # The frames before the broken one stand (a stream's last DATA before a bad END):
            # they are returned, and the error waits in ``error`` for the caller.
            self.error = exc
            self.phase = Phase.CLOSED
        return events

    def _apply_into(self, frames: list[p.Frame], events: list[p.Frame]) -> None:
        streams = self.streams
        for frame in frames:
            kind = type(frame)
            if kind is p.Data:
                stream = streams.get(frame.stream)  # type: ignore[union-attr]
                if stream is None:
                    self._check_known(frame.stream)  # type: ignore[union-attr]
                    continue
                stream.received(len(frame.data))  # type: ignore[union-attr]
                events.append(frame)
            elif kind is p.Credit:
                stream = streams.get(frame.stream)  # type: ignore[union-attr]
                if stream is None:
                    self._check_known(frame.stream)  # type: ignore[union-attr]
                    continue
                stream.credited(frame.amount)  # type: ignore[union-attr]
                events.append(frame)
            elif kind is p.End or kind is p.Reset:
                sid = frame.stream  # type: ignore[union-attr]
                stream = streams.get(sid)
                if stream is None:
                    self._check_known(sid)
                    continue
                stream.apply(Event.RECV_END if kind is p.End else Event.RECV_RESET)
                if stream.closed:
                    del streams[sid]
                events.append(frame)
            elif kind is p.Open:
                self._opened(frame)  # type: ignore[arg-type]
                events.append(frame)
            elif kind is p.Ping:
                self._ping()
                self._queue(p.encode(p.Pong(frame.payload)))  # type: ignore[union-attr]
            elif kind is p.Pong:
                events.append(frame)
            elif kind is p.GoAway:
                if self.side is Side.RELAY and self.goaway_received:
                    raise p.ProtocolError("a second GOAWAY from the agent")
                self.goaway_received = True
                events.append(frame)
            elif kind is p.Error and self.side is Side.AGENT:
                self.phase = Phase.CLOSED  # refused after all (a revoked token, a takeover)
                events.append(frame)
            else:
                raise p.ProtocolError(f"unexpected {kind.__name__} frame from the {self._peer}")

    @property
    def _peer(self) -> str:
        return "agent" if self.side is Side.RELAY else "relay"

    def _greeting(self, frames: list[p.Frame]) -> list[p.Frame]:
        if self.phase is Phase.CLOSED:
            return []  # refused: whatever still arrives is dropped until the link closes
        if self.phase is Phase.ADMITTING:
            raise p.ProtocolError("frames sent before the HELLO was answered")
        first = frames[0]
        if self.side is Side.RELAY:
            if type(first) is not p.Hello or len(frames) != 1:
                raise p.ProtocolError("the first message must be one HELLO frame, alone")
            self.phase = Phase.ADMITTING
            return frames
        if type(first) is p.Welcome:
            # "not >=" so that NaN, which compares false with everything, is refused too.
            if (
                not 1024 <= first.window <= p.MAX_WINDOW
                or not first.ping_interval >= 0.05
                or not first.lease >= 0
            ):
                raise p.ProtocolError("the relay's welcome has an impossible window or interval")
            self.peer_window = first.window
            self.phase = Phase.OPEN
            return frames
        if type(first) is p.Error:
            self.phase = Phase.CLOSED
            return [first]
        raise p.ProtocolError(f"the relay's first frame is {type(first).__name__}, not WELCOME")

    def _check_known(self, sid: int) -> None:
        # Frames for a stream that ended a moment ago are normal; for one never opened, hostile.
        if sid >= self.next_id:
            raise p.ProtocolError(f"frame for stream {sid}, which was never opened")

    def _opened(self, frame: p.Open) -> None:
        if self.side is Side.RELAY:
            raise p.ProtocolError("an agent cannot open streams")
        sid = frame.stream
        if sid < self.next_id:
            raise p.ProtocolError(f"stream {sid} opened again (ids only grow)")
        self.next_id = sid + 1
        self.streams[sid] = Stream(sid, self.peer_window, self.window)

    def _ping(self) -> None:
        now: float = self._clock()
        refill = (now - self._ping_stamp) * PING_RATE
        self._ping_tokens = min(PING_BURST, self._ping_tokens + refill)
        self._ping_stamp = now
        if self._ping_tokens < 1.0:
            raise p.ProtocolError(f"ping flood: more than {PING_RATE:g} PINGs a second")
        self._ping_tokens -= 1.0

    def websocket_ping(self) -> None:
        """A websocket-level ping arrived (answered by websockets): it counts as a PING."""
        self._ping()

    # -- greeting commands ---------------------------------------------------------------------

    def hello(self, hello: p.Hello) -> None:
        """Agent: open the session."""
        if self.side is not Side.AGENT or self.phase is not Phase.GREETING or self._hello_sent:
            raise LocalStreamError("only an agent sends HELLO, once")
        self._hello_sent = True
        self._queue(p.encode(hello))

    def welcome(self, welcome: p.Welcome, peer_window: int) -> None:
        """Relay: accept the HELLO; ``peer_window`` is what we may send per stream."""
        if self.phase is not Phase.ADMITTING:
            raise LocalStreamError("WELCOME answers a HELLO, once")
        self.peer_window = peer_window
        self.phase = Phase.OPEN
        self._queue(p.encode(welcome))

    def refuse(self, code: str, message: str) -> None:
        """Relay: refuse the HELLO, or later end the session for a reason (a revoked token)."""
        if self.side is not Side.RELAY:
            raise LocalStreamError("only a relay refuses a session")
        self.phase = Phase.CLOSED
        self._queue(p.encode(p.Error(code, message)))

    def go_away(self, reason: str) -> None:
        """Relay: we are shutting down; the agent should reconnect later.
        Agent: we stop on purpose; the relay frees our name at once. Once, on an open session."""
        if self.side is Side.AGENT and (self.phase is not Phase.OPEN or self.goaway_sent):
            raise LocalStreamError("an agent sends GOAWAY once, after its WELCOME")
        self.goaway_sent = True
        self._queue(p.encode(p.GoAway(reason)))

    def ping(self, payload: int) -> None:
        self._queue(p.encode(p.Ping(payload)))

    # -- stream commands -------------------------------------------------------------------------

    def open_stream(self, client_host: str, client_port: int) -> Stream:
        """Relay: open a stream for a visitor; the agent is told at once."""
        if self.side is not Side.RELAY or self.phase is not Phase.OPEN:
            raise LocalStreamError("only an admitted relay session opens streams")
        if self.goaway_received:
            raise LocalStreamError("the agent said GOAWAY: it gets no more streams")
        sid = self.next_id
        if sid > p.MAX_STREAM_ID:
            raise LocalStreamError("stream ids are used up: this session must be replaced")
        self.next_id += 1
        stream = Stream(sid, self.peer_window, self.window)
        self.streams[sid] = stream
        self._queue(p.encode(p.Open(sid, client_host, client_port)))
        return stream

    def send_data(self, stream: Stream, data: bytes) -> None:
        """Queue DATA; it must fit ``stream.send_credit`` (callers hold the rest back)."""
        stream.sent(len(data))
        self._out.append(p.data_prefix(stream.id, len(data)))
        self._out.append(data)
        self._frames += 1
        self.queued_bytes += len(data)
        if self._frames >= p.MAX_FRAMES:
            self._seal()

    def end(self, stream: Stream) -> None:
        """We will send no more on ``stream`` (half close)."""
        if stream.apply(Event.SEND_END) is State.CLOSED:
            self.streams.pop(stream.id, None)
        self._queue(p.encode(p.End(stream.id)))

    def reset(self, stream: Stream, code: str, message: str = "") -> None:
        """Abort ``stream`` both ways; a stream already over is left alone."""
        if stream.closed:
            return
        stream.apply(Event.SEND_RESET)
        self.streams.pop(stream.id, None)
        self._queue(p.encode(p.Reset(stream.id, code, message)))

    def consume(self, stream: Stream, size: int) -> None:
        """``size`` received bytes drained into our socket: grant them back in good time."""
        amount = stream.consume(size)
        if amount and not stream.closed:
            self._queue(p.encode_credit(stream.id, amount))

    def grant_now(self, stream: Stream) -> None:
        """Grant back every consumed byte now (the socket drained after a pause)."""
        amount = stream.take_grant()
        if amount and not stream.closed:
            self._queue(p.encode_credit(stream.id, amount))

    # -- output -------------------------------------------------------------------------------

    def _queue(self, encoded: bytes) -> None:
        self._out.append(encoded)
        self._frames += 1
        self.queued_bytes += len(encoded)
        if self._frames >= p.MAX_FRAMES:
            self._seal()

    def _seal(self) -> None:
        # The peer refuses a message of more than MAX_FRAMES frames: the next ones start anew.
        pieces = self._out
        pieces.insert(0, p.array_header(self._frames))
        self._sealed.append(pieces)
        self._out = []
        self._frames = 0

    @property
    def has_output(self) -> bool:
        return bool(self._out or self._sealed)

    def data_to_send(self) -> list[bytes]:
        """The pieces of the next message to send ([] when none): call until it returns [].

        One message holds every queued frame, unless more than MAX_FRAMES were queued.
        """
        if self._out:
            self._seal()
        if not self._sealed:
            return []
        pieces = self._sealed.pop(0)
        if not self._sealed:
            self.queued_bytes = 0
        return pieces


__all__ = [
    "HELLO_MAX",
    "PING_BURST",
    "PING_RATE",
    "LocalStreamError",
    "Phase",
    "Session",
    "Side",
    "StreamError",
]
