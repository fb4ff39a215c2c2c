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
from relay.wire import codec as p

if TYPE_CHECKING:
    from relay.transport.link import FrameLink


class FlowControlError(p.ProtocolError):
    """The peer sent more DATA than the window it was granted."""


class StreamBridge(asyncio.Protocol):
    """A socket <-> stream bridge; subclasses add HTTP awareness and lifecycle policy."""

    def __init__(self, link: FrameLink, sid: int, send_window: int, recv_window: int) -> None:
        self.link = link
        self.sid = sid
        self.transport: asyncio.Transport | None = None
        self.send_credit = send_window  # bytes we may still send the peer
        self.recv_allowed = recv_window  # bytes the peer may still send us
        self.grant_at = max(recv_window // 4, 1)
        self.unacked = 0  # bytes written to our socket, not yet granted back
        self.held: list[bytes] = []
        self.reading_paused = False  # out of the peer's credit
        self.link_blocked = False  # the link's own socket is backed up
        self._socket_reading = True  # what we last told the transport
        self.writing_paused = False
        self.sent_end = False  # our socket reached EOF and the peer was told
        self.got_end = False  # the peer will send no more
        self.end_after_held = False
        self.finished = False
        self.bytes_to_socket = 0
        self.bytes_from_socket = 0

    # -- socket -> peer ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses
        set_nodelay(transport)

    def forward(self, data: bytes) -> None:
        """Send bytes read from our socket to the peer, within its credit."""
        self.bytes_from_socket += len(data)
        if not self.held and len(data) <= self.send_credit:
            self.send_credit -= len(data)
            self.link.queue_data(self.sid, data)
            return
        self.held.append(data)
        self._send_held()

    def _send_held(self) -> None:
        while self.held and self.send_credit > 0:
            data = self.held[0]
            if len(data) <= self.send_credit:
                self.held.pop(0)
            else:
                data, self.held[0] = data[: self.send_credit], data[self.send_credit :]
            self.send_credit -= len(data)
            self.link.queue_data(self.sid, data)
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
        self.send_credit += amount
        if self.send_credit > p.MAX_WINDOW:
            raise FlowControlError(f"stream {self.sid}: credit overflow")
        if self.held:
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
        self.link.queue(p.encode(p.End(self.sid)))
        if self.got_end:
            self.finish()

    # -- peer -> socket ---------------------------------------------------------------------------

    def on_data(self, data: bytes) -> None:
        if self.got_end:
            raise p.ProtocolError(f"stream {self.sid}: DATA after END")
        size = len(data)
        if size > self.recv_allowed:
            raise FlowControlError(
                f"stream {self.sid}: peer sent {size} bytes with {self.recv_allowed} granted"
            )
        self.recv_allowed -= size
        self.bytes_to_socket += size
        self.write(data)
        self.unacked += size
        if self.unacked >= self.grant_at and not self.writing_paused:
            self.grant()

    def write(self, data: bytes) -> None:
        """Write to our socket (subclasses may buffer until it exists)."""
        assert self.transport is not None
        self.transport.write(data)

    def grant(self) -> None:
        if self.unacked and not self.finished:
            self.link.queue(p.encode_credit(self.sid, self.unacked))
            self.recv_allowed += self.unacked
            self.unacked = 0

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
            self.link.queue(p.encode(p.Reset(self.sid, code, message)))
            self.forget()
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished:
            self.finished = True
            self.link.queue(p.encode(p.Reset(self.sid, "closed", str(exc or "socket closed"))))
            self.forget()

    def detach_stream(self, code: str) -> None:
        """Leave the current stream (the peer resets its end) and be ready for another one."""
        if not self.finished:
            self.link.queue(p.encode(p.Reset(self.sid, code, "the connection moved on")))
            self.forget()
        self.sid = 0
        self.send_credit = self.recv_allowed = self.unacked = 0
        self.held.clear()
        self.sent_end = self.got_end = self.end_after_held = self.finished = False
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
        """Remove this stream from its link's table (subclasses know the table)."""
