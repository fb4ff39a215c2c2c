"""Sans-I/O reading of WebSocket frames (RFC 6455) as they pass, for the inspector: messages out.

:class:`WsFrameReader` is fed one direction's bytes after a 101 and returns each message once
its last frame has passed: kind, payload size, and a preview of its first bytes (unmasked).
It reads frame headers and copies at most the preview's bytes of each message; the rest of a
payload is skipped by counting, so a large message costs what its headers cost. Fragmented
messages are reassembled (control frames between their fragments are messages of their own);
frames may be split anywhere. On anything that breaks the framing rules it stops reading and
says why in ``broken``: the bytes still flow, only the inspector stops listing them.

Permessage-deflate (RFC 7692): a compressed message is marked, its size is the compressed size,
and its preview is inflated only when that is cheap and bounded: the direction negotiated
``no_context_takeover`` (each message inflates alone) and at most ``preview`` bytes come out.
Otherwise inflating would mean inflating every byte of the connection: the preview stays empty.
"""

from __future__ import annotations

import zlib
from typing import Final

from relay.http.stream_message import StreamMessage

PREVIEW_BYTES: Final = 256
KINDS: Final = {1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
_CONTINUATION: Final = 0
_DEFLATE_TAIL: Final = b"\x00\x00\xff\xff"


class Deflate:
    """What a handshake's permessage-deflate says about one direction's messages."""

    __slots__ = ("enabled", "no_context_takeover")

    def __init__(self, enabled: bool = False, no_context_takeover: bool = False) -> None:
        self.enabled = enabled
        self.no_context_takeover = no_context_takeover


def negotiated_deflate(extensions: str, client_to_server: bool) -> Deflate:
    """The permessage-deflate terms a 101's ``Sec-WebSocket-Extensions`` value agreed on."""
    for offer in extensions.split(","):
        params = [p.strip().lower() for p in offer.split(";")]
        if params[0] == "permessage-deflate":
            side = "client" if client_to_server else "server"
            return Deflate(True, f"{side}_no_context_takeover" in params[1:])
    return Deflate()


class WsFrameReader:
    """Reads one direction of a WebSocket connection; ``feed`` returns the messages completed."""

    def __init__(
        self,
        direction: str,
        masked: bool,
        deflate: Deflate | None = None,
        preview: int = PREVIEW_BYTES,
    ) -> None:
        self.direction = direction  # "in" (client -> server, masked) or "out"
        self.masked = masked  # RFC 6455 5.1: clients mask every frame, servers none
        self.deflate = deflate or Deflate()
        self.preview_bytes = preview
        self.broken = ""  # why reading stopped; "" while it goes on
        self._head = bytearray()  # a frame header split across reads
        self._remaining = 0  # payload bytes of the current frame still to come
        self._mask = b""
        self._offset = 0  # payload bytes of the current frame already passed (for the mask)
        self._fin = False
        self._control: _Message | None = None  # the control frame being read
        self._data: _Message | None = None  # the (maybe fragmented) data message being read
        self._in_payload = False

    def feed(self, data: bytes, now: float) -> list[StreamMessage]:
        """The messages whose last byte is in ``data``; never raises."""
        if self.broken:
            return []
        out: list[StreamMessage] = []
        pos, n = 0, len(data)
        try:
            while pos < n:
                if not self._in_payload:
                    pos = self._read_header(data, pos)
                    if not self._in_payload:
                        break  # the header continues in the next read
                    if self._remaining == 0:
                        self._frame_done(now, out)
                    continue
                take = min(self._remaining, n - pos)
                message = self._control if self._control is not None else self._data
                assert message is not None
                room = self.preview_bytes - len(message.preview)
                if room > 0:
                    piece = data[pos : pos + min(take, room)]
                    message.preview += _unmask(piece, self._mask, self._offset)
                pos += take
                self._offset += take
                self._remaining -= take
                if self._remaining == 0:
                    self._frame_done(now, out)
        except _Malformed as exc:
            self.broken = str(exc)
        return out

    def count(self, data: bytes) -> int:
        """The messages whose last byte is in ``data``, counted, not read: for a log that keeps
        no more. Whole unfragmented text/binary frames are skipped by their headers alone;
        from the first other frame on, ``data`` is read as :meth:`feed` reads it (a malformed
        frame still stops reading)."""
        if self.broken:
            return 0
        pos, n, found = 0, len(data), 0
        if not (self._in_payload or self._head or self._data is not None):
            masked = self.masked
            while n - pos >= 2:
                b0, b1 = data[pos], data[pos + 1]
                if (b0 != 0x82 and b0 != 0x81) or bool(b1 & 0x80) is not masked:
                    break  # a control frame, a fragment, an extension's bit, wrong masking
                length = b1 & 0x7F
                start = pos + 2
                if length == 126:
                    length = int.from_bytes(data[start : start + 2], "big")
                    start += 2
                elif length == 127:
                    break  # rare; feed checks the 64-bit length
                end = start + (4 if masked else 0) + length
                if end > n:
                    break  # the frame continues in the next read: feed follows it
                pos = end
                found += 1
        if pos < n:
            found += len(self.feed(data[pos:] if pos else data, 0.0))
        return found

    def _read_header(self, data: bytes, pos: int) -> int:
        """Consume a frame header from ``data`` at ``pos``; sets ``_in_payload`` once whole."""
        head = self._head
        if not head and len(data) - pos >= 2:  # the usual case: the whole header is here
            b1 = data[pos + 1]
            length7 = b1 & 0x7F
            need = 2 + (2 if length7 == 126 else 8 if length7 == 127 else 0) + (b1 >> 7) * 4
            if len(data) - pos >= need:
                self._start_frame(data[pos : pos + need])
                return pos + need
        need = 2
        while True:
            if len(head) >= 2:
                length7 = head[1] & 0x7F
                need = 2 + (2 if length7 == 126 else 8 if length7 == 127 else 0)
                need += 4 if head[1] & 0x80 else 0
            if len(head) >= need:
                break
            take = min(need - len(head), len(data) - pos)
            if take <= 0:
                return pos
            head += data[pos : pos + take]
            pos += take
        self._start_frame(bytes(head))
        head.clear()
        return pos

    def _start_frame(self, head: bytes) -> None:
        b0, b1 = head[0], head[1]
        fin, rsv1, opcode = bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F
        if b0 & 0x30:
            raise _Malformed("reserved bits RSV2/RSV3 set (no extension uses them)")
        if bool(b1 & 0x80) != self.masked:
            side = "client" if self.direction == "in" else "server"
            raise _Malformed(f"a {side} frame {'not ' if self.masked else ''}masked")
        length = b1 & 0x7F
        at = 2
        if length == 126:
            length, at = int.from_bytes(head[2:4], "big"), 4
        elif length == 127:
            length, at = int.from_bytes(head[2:10], "big"), 10
            if length >> 63:
                raise _Malformed("a 64-bit length with its top bit set")
        self._mask = head[at : at + 4] if self.masked else b""
        if opcode in (8, 9, 10):
            if not fin or length > 125:
                raise _Malformed("a control frame fragmented or longer than 125 bytes")
            if rsv1:
                raise _Malformed("a control frame with RSV1 set")
            self._control = _Message(KINDS[opcode], False)
        elif opcode == _CONTINUATION:
            if self._data is None:
                raise _Malformed("a continuation frame with no message to continue")
            if rsv1:
                raise _Malformed("a continuation frame with RSV1 set")
        elif opcode in (1, 2):
            if self._data is not None:
                raise _Malformed("a new message before the last one's final frame")
            if rsv1 and not self.deflate.enabled:
                raise _Malformed("RSV1 set without permessage-deflate")
            self._data = _Message(KINDS[opcode], rsv1)
        else:
            raise _Malformed(f"unknown opcode {opcode:#x}")
        message = self._control if self._control is not None else self._data
        assert message is not None
        message.size += length
        self._fin = fin
        self._remaining = length
        self._offset = 0
        self._in_payload = True

    def _frame_done(self, now: float, out: list[StreamMessage]) -> None:
        self._in_payload = False
        if self._control is not None:
            message, self._control = self._control, None
        elif self._fin:
            message, self._data = self._data, None  # type: ignore[assignment]
        else:
            return  # more fragments follow
        preview = bytes(message.preview)
        if message.compressed:
            preview = self._inflated(preview, message.size)
        out.append(
            StreamMessage(
                now, self.direction, message.kind, message.size, preview, message.compressed
            )
        )

    def _inflated(self, compressed: bytes, size: int) -> bytes:
        if not self.deflate.no_context_takeover:
            return b""  # it depends on every message before it: not cheap
        tail = _DEFLATE_TAIL if size <= len(compressed) else b""
        try:
            return zlib.decompressobj(-15).decompress(compressed + tail, self.preview_bytes)
        except zlib.error:
            return b""


class _Message:
    __slots__ = ("compressed", "kind", "preview", "size")

    def __init__(self, kind: str, compressed: bool) -> None:
        self.kind = kind
        self.compressed = compressed
        self.size = 0
        self.preview = bytearray()


class _Malformed(Exception):
    pass


def _unmask(piece: bytes, mask: bytes, offset: int) -> bytes:
    """``piece`` unmasked, ``offset`` bytes into its frame's payload (only preview bytes)."""
    if not mask or not piece:
        return piece
    key = (mask * 2)[offset % 4 : offset % 4 + 4]
    n = len(piece)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(piece, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
