"""One stream's lifecycle and credit windows: a table-driven state machine (sans-I/O).

Theory of operation
-------------------
A stream is one tunnelled connection (or one request, or one TCP connection): bytes both ways,
each direction ended on its own (half close), or the whole stream aborted (reset). Both sides of
a session keep a :class:`Stream` per open stream id; every frame that touches a stream, sent or
received, is first checked against :data:`TRANSITIONS`::

    state               event          -> state
    OPEN                send/recv DATA -> OPEN
    OPEN                send END       -> LOCAL_ENDED     (we will send no more)
    OPEN                recv END       -> REMOTE_ENDED    (the peer will send no more)
    LOCAL_ENDED         recv DATA      -> LOCAL_ENDED
    LOCAL_ENDED         recv END       -> CLOSED
    REMOTE_ENDED        send DATA      -> REMOTE_ENDED
    REMOTE_ENDED        send END       -> CLOSED
    any but CLOSED      send/recv RESET-> RESET

A pair that is not in the table is a protocol violation: raised as :class:`StreamError` when the
peer did it (the session turns that into a protocol error that closes the link) and as
:class:`LocalStreamError` when our own code did (a bug, never the peer's fault). CLOSED and RESET
are terminal; the session forgets such a stream, and frames the peer had already sent for it
(in flight) are ignored there, since stream ids are never reused.

Flow control is per direction, like HTTP/2. ``send_credit`` is how many DATA bytes we may still
send; the peer raises it with CREDIT frames. ``recv_allowed`` is how many the peer may still send
us; receiving more is a :class:`FlowControlError`. Bytes we drain into our socket are *consumed*;
consumed bytes are granted back to the peer (a CREDIT frame) once they reach a quarter of the
window, so a busy stream costs one CREDIT per quarter window, not one per DATA frame.
"""

from __future__ import annotations

import enum
from typing import Final

from relay.wire.codec import ProtocolError

MAX_WINDOW: Final = 2**31 - 1


class StreamError(ProtocolError):
    """The peer broke a stream rule (the session closes the link)."""


class FlowControlError(StreamError):
    """The peer sent more DATA than the window it was granted, or overflowed its credit."""


class LocalStreamError(Exception):
    """Our own code broke a stream rule: a bug on this side, not the peer's doing."""


class State(enum.Enum):
    OPEN = "open"
    LOCAL_ENDED = "local_ended"  # half-closed: we sent END
    REMOTE_ENDED = "remote_ended"  # half-closed: the peer sent END
    CLOSED = "closed"
    RESET = "reset"


class Event(enum.Enum):
    SEND_DATA = "send DATA"
    RECV_DATA = "receive DATA"
    SEND_END = "send END"
    RECV_END = "receive END"
    SEND_RESET = "send RESET"
    RECV_RESET = "receive RESET"


_S, _E = State, Event
TRANSITIONS: Final[dict[tuple[State, Event], State]] = {
    (_S.OPEN, _E.SEND_DATA): _S.OPEN,
    (_S.OPEN, _E.RECV_DATA): _S.OPEN,
    (_S.OPEN, _E.SEND_END): _S.LOCAL_ENDED,
    (_S.OPEN, _E.RECV_END): _S.REMOTE_ENDED,
    (_S.LOCAL_ENDED, _E.RECV_DATA): _S.LOCAL_ENDED,
    (_S.LOCAL_ENDED, _E.RECV_END): _S.CLOSED,
    (_S.REMOTE_ENDED, _E.SEND_DATA): _S.REMOTE_ENDED,
    (_S.REMOTE_ENDED, _E.SEND_END): _S.CLOSED,
    **{(s, e): _S.RESET for s in (_S.OPEN, _S.LOCAL_ENDED, _S.REMOTE_ENDED) for e in
       (_E.SEND_RESET, _E.RECV_RESET)},
}  # fmt: skip
_RECEIVED: Final = frozenset({_E.RECV_DATA, _E.RECV_END, _E.RECV_RESET})
TERMINAL: Final = frozenset({_S.CLOSED, _S.RESET})


class Stream:
    """The state and the two credit windows of one stream id."""

    __slots__ = ("grant_at", "id", "recv_allowed", "send_credit", "state", "unconsumed")

    def __init__(self, stream_id: int, send_window: int, recv_window: int) -> None:
        self.id = stream_id
        self.state = State.OPEN
        self.send_credit = send_window  # DATA bytes we may still send
        self.recv_allowed = recv_window  # DATA bytes the peer may still send us
        self.unconsumed = 0  # bytes drained into our socket, not yet granted back
        self.grant_at = max(recv_window // 4, 1)

    def __repr__(self) -> str:
        return f"<Stream {self.id} {self.state.value} send={self.send_credit}>"

    @property
    def closed(self) -> bool:
        return self.state in TERMINAL

    def apply(self, event: Event) -> State:
        """Move to the state ``event`` leads to, or raise if the table has no such move."""
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            message = f"stream {self.id}: cannot {event.value} when {self.state.value}"
            if event in _RECEIVED:
                raise StreamError(message)
            raise LocalStreamError(message)
        self.state = new
        return new

    # -- DATA and credit ---------------------------------------------------------------------

    def sent(self, size: int) -> None:
        """We send ``size`` DATA bytes: they must fit the peer's credit."""
        state = self.state
        if state is not State.OPEN and state is not State.REMOTE_ENDED:
            self.apply(Event.SEND_DATA)  # raises: no DATA after our END or a reset
        if size > self.send_credit:
            raise LocalStreamError(
                f"stream {self.id}: {size} bytes to send with {self.send_credit} of credit"
            )
        self.send_credit -= size

    def received(self, size: int) -> None:
        """The peer sent ``size`` DATA bytes: they must fit the window we granted."""
        state = self.state
        if state is not State.OPEN and state is not State.LOCAL_ENDED:
            self.apply(Event.RECV_DATA)  # raises: DATA after the peer's END
        if size > self.recv_allowed:
            raise FlowControlError(
                f"stream {self.id}: peer sent {size} bytes with {self.recv_allowed} granted"
            )
        self.recv_allowed -= size

    def credited(self, amount: int) -> None:
        """The peer granted ``amount`` more bytes."""
        self.send_credit += amount
        if self.send_credit > MAX_WINDOW:
            raise FlowControlError(f"stream {self.id}: credit beyond the largest window")

    def consume(self, size: int) -> int:
        """``size`` received bytes reached our socket; return the CREDIT to send now (or 0)."""
        self.unconsumed += size
        if self.unconsumed < self.grant_at:
            return 0
        return self.take_grant()

    def take_grant(self) -> int:
        """Every consumed byte not yet granted back, now (0 when there is none)."""
        amount = self.unconsumed
        self.unconsumed = 0
        self.recv_allowed += amount
        return amount
