"""One TCP socket bridged to one stream of a FrameLink, with per-stream flow control.

Both ends of a tunnelled connection are StreamBridges: on the relay, the visitor's socket; on
the agent, the socket to the local app. The rules are the same on both:

* socket -> peer: send DATA while the peer's credit lasts; when it runs out, stop reading the
  socket (``pause_reading``) and hold at most the one read that overshot.
* peer -> socket: write DATA to the socket and grant the bytes back as CREDIT once the socket's
  write buffer is below its high-water mark; while it is above (``pause_writing``), hold the
  credit back, so a visitor who stops reading stalls only their own stream.

A peer that sends more than the window it was granted breaks the protocol and loses the link.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from relay.transport.link import set_nodelay

if TYPE_CHECKING:
    from relay.transport.link import FrameLink
    from relay.wire.stream import Stream


class StreamBridge(asyncio.Protocol):
    """A socket <-> stream bridge; subclasses add HTTP awareness and lifecycle policy.

    The stream's state and windows live in its :class:`~relay.wire.stream.Stream` (the session
    checks every frame against them); the bridge only decides when to read, write and grant.
    """

    def __init__(self, link: FrameLink | None, stream: Stream | None) -> None:
        self.link: FrameLink = link  # type: ignore[assignment]  # None only until bind()
        self.stream: Stream = stream  # type: ignore[assignment]
        self.sid = stream.id if stream is not None else 0
        self.transport: asyncio.Transport | None = None
        self.unacked = 0  # bytes written to our socket while it was backed up, not yet granted
        self.held: list[bytes] = []
        self.reading_paused = False  # out of the peer's credit
        self.link_blocked = False  # the link's own socket is backed up
        self._socket_reading = True  # what we last told the transport
        self.writing_paused = False
        self.sent_end = False  # our socket reached EOF and the peer was told
        self.got_end = False  # the peer will send no more
        self.wrote_eof = False  # our socket's writing side is shut: nothing more can go out
        self.end_after_held = False
        self.finished = False
        self.bytes_to_socket = 0
        self.bytes_from_socket = 0

    def bind(self, link: FrameLink, stream: Stream) -> None:
        """Carry ``stream`` of ``link`` from now on (a visitor's connection gets one late)."""
        self.link = link
        self.stream = stream
        self.sid = stream.id
        self.unacked = 0
        self.held.clear()
        self.sent_end = self.got_end = self.end_after_held = self.finished = False
        self.reading_paused = False
        self.link_blocked = link.blocked
        self.apply_reading()

    @property
    def send_credit(self) -> int:
        """Bytes we may still send the peer on this stream."""
        return self.stream.send_credit if self.stream is not None else 0

    # -- socket -> peer ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses
        set_nodelay(transport)

    def forward(self, data: bytes) -> None:
        """Send bytes read from our socket to the peer, within its credit."""
        if self.finished:
            return
        self.bytes_from_socket += len(data)
        if not self.held and len(data) <= self.stream.send_credit:
            self.link.send_data(self.stream, data)
            return
        self.held.append(data)
        self._send_held()

    def _send_held(self) -> None:
        stream = self.stream
        while self.held and stream.send_credit > 0:
            data = self.held[0]
            credit = stream.send_credit
            if len(data) <= credit:
                self.held.pop(0)
            else:
                data, self.held[0] = data[:credit], data[credit:]
            self.link.send_data(stream, data)
        if self.held:
            if not self.reading_paused:
                self.reading_paused = True
                self.apply_reading()
        else:
            if self.reading_paused:
                self.reading_paused = False
                self.apply_reading()
            if self.end_after_held:
                self.end_after_held = False
                self._send_end()

    def on_credit(self, amount: int) -> None:
        """The peer granted more (the session already counted it)."""
        # A RESET later in the same message may already have closed the stream in the session.
        if self.held and not self.finished and not self.stream.closed:
            self._send_held()

    def eof_received(self) -> bool:
        if self.held:
            self.end_after_held = True
        else:
            self._send_end()
        return True  # keep the socket open: the other direction may still be flowing

    def _send_end(self) -> None:
        if self.sent_end or self.finished:
            return
        self.sent_end = True
        self.link.end_stream(self.stream)
        if self.got_end:
            self.finish()

    # -- peer -> socket ---------------------------------------------------------------------------

    def on_data(self, data: bytes) -> None:
        """DATA from the peer, already checked against our window by the session."""
        size = len(data)
        self.bytes_to_socket += size
        self.write(data)
        if self.writing_paused:
            self.unacked += size  # granted once our socket drains
        else:
            self.link.consume(self.stream, size)

    def write(self, data: bytes) -> None:
        """Write to our socket (subclasses may buffer until it exists)."""
        assert self.transport is not None
        self.transport.write(data)

    def grant(self) -> None:
        """Grant back what reached our socket while it was backed up."""
        if self.finished:
            return
        if self.unacked:
            self.stream.unconsumed += self.unacked
            self.unacked = 0
        if self.stream.unconsumed:
            self.link.grant_now(self.stream)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.grant()

    def on_end(self) -> None:
        self.got_end = True
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if self.sent_end:
                self.finish()
            elif transport.can_write_eof():
                transport.write_eof()
                self.wrote_eof = True

    def on_reset(self, code: str, message: str) -> None:
        self.finished = True
        self.forget()
        if self.transport is not None:
            self.transport.abort()

    # -- lifecycle ------------------------------------------------------------------

    def finish(self) -> None:
        """Both directions ended cleanly: close our socket once it has flushed."""
        if self.finished:
            return
        self.finished = True
        self.forget()
        if self.transport is not None:
            self.transport.close()

    def reset(self, code: str, message: str = "") -> None:
        """Abort the stream: tell the peer, drop our socket."""
        if not self.finished:
            self.finished = True
            self.link.reset_stream(self.stream, code, message)
            self.forget()
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished:
            self.finished = True
            self.link.reset_stream(self.stream, "closed", str(exc or "socket closed"))
            self.forget()

    def detach_stream(self, code: str) -> None:
        """Leave the current stream (the peer resets its end); bind() gives the next one."""
        if not self.finished:
            self.link.reset_stream(self.stream, code, "the connection moved on")
            self.forget()
        self.sent_end = self.got_end = self.end_after_held = self.finished = False
        self.unacked = 0
        self.held.clear()
        self.reading_paused = False
        self.apply_reading()

    def apply_reading(self) -> None:
        """Read our socket unless out of credit or the link is backed up."""
        want = not (self.reading_paused or self.link_blocked)
        transport = self.transport
        if want != self._socket_reading and transport is not None and not transport.is_closing():
            self._socket_reading = want
            if want:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def block_reading(self, blocked: bool) -> None:
        """The link's socket is backed up (or drained): stop (or resume) reading ours."""
        if blocked != self.link_blocked:
            self.link_blocked = blocked
            self.apply_reading()

    def forget(self) -> None:
        """Remove this stream from its link's table."""
        if self.link is not None:
            self.link.streams.pop(self.sid, None)
