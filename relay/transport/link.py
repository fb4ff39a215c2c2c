"""A websocket that carries a molehill session: websockets' sans-I/O core on an asyncio.Protocol.

Both the relay's side of an agent session and the agent's side of it are FrameLinks. A link
only moves bytes: socket -> websockets protocol (whole messages) -> the molehill
:class:`~relay.wire.session.Session` (rules, events) -> ``on_frame`` / the stream handlers; and
the frames the session queued -> one websocket message per loop iteration -> socket. Batching
the frames of all busy streams into one message per iteration keeps the per-request cost low
without adding latency (the flush runs before the loop next waits for I/O).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from websockets.frames import Frame as _FrameType
from websockets.frames import Opcode, apply_mask
from websockets.protocol import Protocol as WsProtocol
from websockets.protocol import Side, State

from relay.transport.ws_data import DataFrames, at_frame_boundary
from relay.wire import codec as p
from relay.wire.session import Session
from relay.wire.stream import Stream

FLUSH_AT = 1024 * 1024  # send a message now once this much is queued
LINK_HIGH_WATER = 4 * 1024 * 1024  # link socket buffer above which streams stop reading
MAX_FRAME_BYTES = 1 << 62  # no limit set on the websocket: any length a frame can say


class MaskSource:
    """Websocket masking keys, read from the OS 4 KiB at a time instead of 4 bytes a message.

    A client must mask every frame with an unpredictable key (RFC 6455, 5.3); websockets asks
    ``os.urandom`` for each one, a system call per message on the agent's hot path.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.pool = b""
        self.at = size

    def next(self) -> bytes:
        if self.at >= len(self.pool):
            self.pool = os.urandom(self.size)
            self.at = 0
        self.at += 4
        return self.pool[self.at - 4 : self.at]


def binary_frame_header(length: int, mask: bytes | None) -> bytes:
    """The header of one unfragmented binary websocket frame of ``length`` payload bytes."""
    bit = 0x80 if mask is not None else 0
    if length < 126:
        head = struct.pack("!BB", 0x82, bit | length)
    elif length < 0x10000:
        head = struct.pack("!BBH", 0x82, bit | 126, length)
    else:
        head = struct.pack("!BBQ", 0x82, bit | 127, length)
    return head + mask if mask is not None else head


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Disable Nagle: the tunnel relays small writes (request heads, SSE events) one by one."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class FrameLink(asyncio.Protocol):
    """One websocket connection carrying frames; subclasses handle the frames."""

    def __init__(self, ws: WsProtocol, wire: Session) -> None:
        self.ws = ws
        self.wire = wire
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = self.loop.create_future()  # result: the reason, a string
        self.rtt: float | None = None  # seconds, from our last ping
        self.last_received = time.monotonic()
        self._flush_scheduled = False
        self._after_flush: list[tuple[Callable[..., object], tuple[Any, ...]]] = []
        self._fragments: list[bytes] = []
        self._heartbeat: asyncio.TimerHandle | None = None
        self._ping_interval = 0.0
        self._ping_timeout = 0.0
        self._close_reason = ""
        self.blocked = False
        self._masks = MaskSource() if ws.side is Side.CLIENT else None
        self._fast: DataFrames | None = None  # set while websockets waits at a frame boundary

    # -- hooks for subclasses ------------------------------------------------------------------

    def on_open(self) -> None:
        """The websocket handshake completed."""

    def on_handshake(self, event: Any) -> None:
        """The handshake request (server side) or response (client side) arrived."""

    def on_frame(self, frame: p.Frame) -> None:
        """A session event arrived that is not a stream's DATA, CREDIT, END or RESET."""

    def on_close(self, reason: str) -> None:
        """The connection is gone; called once."""

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses
        set_nodelay(transport)
        # Pause the streams only when a lot is queued: toggling them is work for every stream.
        transport.set_write_buffer_limits(high=LINK_HIGH_WATER, low=LINK_HIGH_WATER // 4)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        fast = self._fast
        if fast is not None:
            # Whole binary frames skip websockets (relay/transport/ws_data.py); anything else
            # goes to it from that frame's first byte on, at a frame boundary.
            ws = self.ws
            messages, rest = fast.feed(data, ws.max_message_size or MAX_FRAME_BYTES)
            try:
                for message in messages:
                    self._dispatch(self.wire.receive_message(message))
                    if self.wire.error is not None:
                        raise self.wire.error
            except p.ProtocolError as exc:
                self.fail(f"protocol error: {exc}")
                return
            if not rest:
                if self.wire.has_output:
                    self._schedule()
                return
            self._fast = None
            data = rest
        self._receive_ws(data)

    def _receive_ws(self, data: bytes) -> None:
        """Bytes through websockets' own parser: the handshake, control frames, the unusual."""
        ws = self.ws
        ws.receive_data(data)
        try:
            for event in ws.events_received():
                if type(event) is not _FrameType:
                    was_open = ws.state is State.OPEN
                    self.on_handshake(event)
                    if not was_open and ws.state is State.OPEN:
                        self.on_open()
                    transport = self.transport
                    if ws.state is not State.OPEN or transport is None or transport.is_closing():
                        # Refused (an HTTP answer, a failed node proof): frames that came in
                        # the same read were parsed already and must not reach the session (a
                        # HELLO behind GET /healthz was admitted on a connection that got 200).
                        break
                    continue
                opcode = event.opcode
                if opcode is Opcode.BINARY or opcode is Opcode.CONT:
                    if not event.fin:
                        self._fragments.append(bytes(event.data))
                        continue
                    message = bytes(event.data)
                    if self._fragments:
                        message = b"".join([*self._fragments, message])
                        self._fragments.clear()
                    self._dispatch(self.wire.receive_message(message))
                    if self.wire.error is not None:
                        raise self.wire.error
                elif opcode is Opcode.PING:
                    self.wire.websocket_ping()  # websockets answers it; the rate counts it
                elif opcode is Opcode.TEXT:
                    raise p.ProtocolError("text websocket message; molehill frames are binary")
        except p.ProtocolError as exc:
            self.fail(f"protocol error: {exc}")
            return
        self._write_ws()
        if self.wire.has_output:
            self._schedule()
        if at_frame_boundary(ws):
            self._fast = DataFrames(masked=ws.side is Side.SERVER)

    def _dispatch(self, events: list[p.Frame]) -> None:
        """Hand each session event to its stream's handler, or to ``on_frame``."""
        streams = self.streams
        for frame in events:
            kind = type(frame)
            if kind is p.Data:
                handler = streams.get(frame.stream)  # type: ignore[union-attr]
                if handler is not None:
                    handler.on_data(frame.data)  # type: ignore[union-attr]
            elif kind is p.Credit:
                handler = streams.get(frame.stream)  # type: ignore[union-attr]
                if handler is not None:
                    handler.on_credit(frame.amount)  # type: ignore[union-attr]
            elif kind is p.End:
                handler = streams.get(frame.stream)  # type: ignore[union-attr]
                if handler is not None:
                    handler.on_end()
            elif kind is p.Reset:
                handler = streams.get(frame.stream)  # type: ignore[union-attr]
                if handler is not None:
                    handler.on_reset(frame.code, frame.message)  # type: ignore[union-attr]
            elif kind is p.Pong:
                sent = frame.payload  # type: ignore[union-attr]
                now = time.monotonic_ns()
                if 0 < sent <= now:
                    self.rtt = (now - sent) / 1e9
            else:
                self.on_frame(frame)

    def eof_received(self) -> bool:
        self.ws.receive_eof()
        self._write_ws()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._run_after_flush()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        reason = self._close_reason or (f"connection lost: {exc}" if exc else "connection closed")
        if not self.closed.done():
            self.closed.set_result(reason)
        self.on_close(reason)

    # -- sending: session commands, then a flush within this loop iteration ------------------------

    def send_data(self, stream: Stream, data: bytes) -> None:
        """Queue DATA (within the stream's credit); the payload is copied only into the message."""
        self.wire.send_data(stream, data)
        if self.wire.queued_bytes >= FLUSH_AT:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def end_stream(self, stream: Stream) -> None:
        self.wire.end(stream)
        self._schedule()

    def reset_stream(self, stream: Stream, code: str, message: str = "") -> None:
        self.wire.reset(stream, code, message)
        self._schedule()

    def consume(self, stream: Stream, size: int) -> None:
        """``size`` bytes of ``stream`` reached our socket: credit goes back in good time."""
        wire = self.wire
        wire.consume(stream, size)
        if wire.has_output and not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def grant_now(self, stream: Stream) -> None:
        self.wire.grant_now(stream)
        self._schedule()

    def _schedule(self) -> None:
        if self.wire.queued_bytes >= FLUSH_AT:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def after_flush(self, fn: Callable[..., object], *args: Any) -> None:
        """Call ``fn(*args)`` once what is queued now has been written (in the order asked).

        Bookkeeping that need not delay the bytes (the agent's request log) goes here: one
        list append instead of a loop callback per chunk.
        """
        self._after_flush.append((fn, args))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def _run_after_flush(self) -> None:
        while self._after_flush:
            calls, self._after_flush = self._after_flush, []
            for fn, args in calls:
                fn(*args)

    def flush(self) -> None:
        self._flush_scheduled = False
        wire = self.wire
        pieces = wire.data_to_send()
        if pieces and self.ws.state is State.OPEN and self.transport is not None:
            if getattr(self.ws, "writes", True):  # what websockets has queued goes first
                self._write_ws()  # (it rarely has: a pong or a close is written when made)
            while pieces:
                self._send_message(pieces)
                pieces = wire.data_to_send()
        if self._after_flush:
            self._run_after_flush()

    def _send_message(self, pieces: list[bytes]) -> None:
        # Framed here rather than by websockets' send_binary, which copies the message twice
        # more (into a BytesIO, then out of it) and asks the OS for each masking key. The
        # websocket state machine is not involved in sending data frames, so it stays right.
        transport = self.transport
        assert transport is not None
        if self._masks is None:  # server side: header and pieces leave in one writev
            size = sum(map(len, pieces))
            pieces.insert(0, binary_frame_header(size, None))
            transport.writelines(pieces)
        else:
            mask = self._masks.next()
            payload = apply_mask(b"".join(pieces), mask)
            transport.writelines([binary_frame_header(len(payload), mask), payload])

    def _write_ws(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof() and not transport.is_closing():
                with contextlib.suppress(OSError):  # the socket may already be dead
                    transport.write_eof()
        if self.ws.close_expected() and not transport.is_closing():
            if self.ws.side is Side.SERVER:
                # The relay closes at once: a peer that broke the protocol (a 16 MiB message
                # before its HELLO) must not keep us reading and discarding its bytes.
                transport.close()
            # The closing handshake is done or failed: do not wait for the peer's TCP close.
            self.loop.call_later(1.0, transport.abort)

    def fail(self, reason: str, code: int = 1002) -> None:
        """Close the connection because of ``reason`` (logged by the caller's on_close)."""
        self._close_reason = self._close_reason or reason
        self._fast = None  # nothing more is read as data: websockets discards what comes
        if self.transport is None or self.transport.is_closing():
            return
        if self.ws.state is State.OPEN:
            self.flush()
            self.ws.fail(code, reason[:120])
            with contextlib.suppress(OSError):
                self._write_ws()
        self.transport.close()
        self.loop.call_later(1.0, self.transport.abort)

    def close(self, reason: str, code: int = 1000) -> None:
        """Close cleanly: queued frames leave first."""
        self._close_reason = self._close_reason or reason
        if self.transport is None or self.transport.is_closing():
            return
        self.flush()
        if self.ws.state is State.OPEN:
            self.ws.send_close(code, reason[:120])
            self._write_ws()
        self.loop.call_later(2.0, self.transport.abort)

    # -- backpressure on the link itself ----------------------------------------------------

    streams: dict[int, Any]  # the subclass's streams (StreamBridges), by id

    def pause_writing(self) -> None:
        # Per-stream credit bounds each stream; this bounds them all together when the peer
        # (or the network) stops taking bytes: no stream reads its socket until it drains.
        self.blocked = True
        for stream in list(self.streams.values()):
            stream.block_reading(True)

    def resume_writing(self) -> None:
        self.blocked = False
        for stream in list(self.streams.values()):
            stream.block_reading(False)

    # -- heartbeat ------------------------------------------------------------------

    def start_heartbeat(self, interval: float, timeout: float) -> None:
        """Ping every ``interval`` s; declare the peer dead after ``timeout`` s of silence."""
        self._ping_interval = interval
        self._ping_timeout = timeout
        # The first ping goes at once, so the round-trip time is known from the start.
        self._heartbeat = self.loop.call_soon(self._beat)  # type: ignore[assignment]

    def _beat(self, confirming: bool = False) -> None:
        silent = time.monotonic() - self.last_received
        if silent >= self._ping_timeout:
            if not confirming:
                # Look again after the loop has polled the sockets once: after a stall of this
                # process (a busy machine, a long callback) the timer runs before the reads
                # that were waiting, and a live peer's bytes may be among them.
                self._heartbeat = self.loop.call_later(0.05, self._beat, True)
                return
            self.fail(f"heartbeat timeout: peer silent for {silent:.1f}s", code=1011)
            if self.transport is not None:
                self.transport.abort()
            return
        self.wire.ping(time.monotonic_ns())
        self._schedule()
        wait = min(self._ping_interval, self._ping_timeout - silent)
        self._heartbeat = self.loop.call_later(max(wait, 0.01), self._beat)
