"""Two streams joined end to end on a cluster node: a visitor's stream that arrived over a
node-to-node link, and the stream to the agent that holds the tunnel.

Each end is an ordinary :class:`~relay.transport.bridge.StreamBridge`, whose "socket" is a
:class:`Pipe` into the other end: what one stream delivers is forwarded on the other within its
credit, and when the other end runs out of credit the pipe pauses this end's writing, so its
credit is held back too. Memory per spliced stream stays within one window each way, and a
visitor who stops reading stalls only their own stream, as on a single relay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.transport.bridge import StreamBridge

if TYPE_CHECKING:
    from relay.transport.link import FrameLink
    from relay.wire.stream import Stream


class Pipe:
    """The transport an end writes to: the other end's input (the subset StreamBridge uses)."""

    def __init__(self, into: SpliceEnd) -> None:
        self.into = into
        self.closing = False
        self.ended = False  # the other end was told this end's peer sends no more

    def write(self, data: bytes) -> None:
        if not self.closing:
            self.into.forward(data)

    def writelines(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self.write(piece)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if not self.closing and not self.ended:
            self.ended = True
            self.into.eof_received()

    def pause_reading(self) -> None:
        # This end holds bytes it has no credit to send: the other end stops granting credit
        # for what it receives (it "writes" to this end), so its peer stops sending.
        self.into.pause_writing()

    def resume_reading(self) -> None:
        self.into.resume_writing()

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        # Both directions of this end's stream ended. When its peer's END came last, the end
        # closes without a write_eof (a socket needs none once it is closed); the other end
        # must still pass that END on, or its stream stays half-closed for good and holds the
        # visitor's connection on the node it came through (issue 16).
        self.write_eof()
        self.closing = True

    def abort(self) -> None:
        if not self.closing:
            self.closing = True
            self.into.reset("reset", "the other end of the spliced stream was reset")

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


class SpliceEnd(StreamBridge):
    """One stream of a splice. ``client_ip``/``client_port``: the visitor, for the agent."""

    def __init__(self, link: FrameLink | None, stream: Stream | None, ip: str, port: int) -> None:
        super().__init__(link, stream)
        self.client_ip = ip
        self.client_port = port
        self.other: SpliceEnd | None = None

    def on_reset(self, code: str, message: str) -> None:
        """The peer reset this stream: reset the other one with the same code (the visitor's
        node turns ``connect_failed`` into its 502 page, ``session_lost`` into 503)."""
        if self.finished:
            return
        self.finished = True
        self.forget()
        if self.transport is not None:
            self.transport.closing = True  # type: ignore[attr-defined]
        if self.other is not None:
            self.other.reset(code, message)


def splice(near: FrameLink, stream: Stream, ip: str, port: int) -> tuple[SpliceEnd, SpliceEnd]:
    """An end for ``stream`` of ``near`` and a free end (to bind to the agent), piped together."""
    a = SpliceEnd(near, stream, ip, port)
    b = SpliceEnd(None, None, ip, port)
    a.other, b.other = b, a
    a.transport = Pipe(b)  # type: ignore[assignment]
    b.transport = Pipe(a)  # type: ignore[assignment]
    return a, b
