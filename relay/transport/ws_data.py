"""A fast path for the websocket's data frames: whole binary messages read without websockets.

Nearly every frame on a molehill link is one unfragmented binary message. websockets reads each
through a generator chain (``Protocol.parse`` -> ``Frame.parse`` -> ``StreamReader.read_exact``),
a buffer append and two slices, an ``Opcode`` lookup, a ``Frame`` object and extension checks:
about a tenth of what relay and agent spend per WebSocket echo round trip. :class:`DataFrames`
reads exactly those frames itself, and stops at the first frame that is anything else:

* control frames (ping, pong, close), text, fragments, reserved bits, a frame masked the wrong
  way, a message over the websocket's size limit;

the bytes from that frame's first byte on then go to websockets, which is at a frame boundary
at that moment (this reader only ever consumed whole frames), and which judges them as it
always did (a pong for a ping, a close, a protocol error). The link hands bytes back to this
reader only once websockets is again waiting at a frame boundary (:func:`at_frame_boundary`).

It buffers at most one frame that is still arriving, whose declared length was checked against
the limit first: a peer cannot make it hold more than websockets would.
"""

from __future__ import annotations

from typing import Any

from websockets.frames import apply_mask
from websockets.protocol import Protocol, State
from websockets.streams import StreamReader

# websockets' parser waits here between frames (None on a websockets without it: no fast path)
_AT_EOF = getattr(getattr(StreamReader, "at_eof", None), "__code__", None)
_BINARY_FIN = 0x82  # FIN, no RSV bits, opcode 2


def at_frame_boundary(ws: Protocol) -> bool:
    """websockets has read every byte it was given and waits for the next frame's first byte:
    an open connection, no fragmented message under way, no extension, nothing buffered."""
    try:
        if ws.state is not State.OPEN or ws.reader.buffer or ws.current_size is not None:
            return False
        if ws.extensions:
            return False  # a frame's meaning would depend on them (permessage-deflate's RSV1)
        gen: Any = ws.parser
        while gen is not None and gen.gi_yieldfrom is not None:
            gen = gen.gi_yieldfrom
    except AttributeError:
        # These are websockets' internals (tested against the version CI installs): a
        # websockets that lays them out otherwise gets no fast path, never a wrong one.
        return False
    return gen is not None and _AT_EOF is not None and gen.gi_code is _AT_EOF


class DataFrames:
    """Reads whole unfragmented binary frames; ``masked``: the peer is a client (RFC 6455 5.1)."""

    __slots__ = ("chunks", "have", "masked", "need")

    def __init__(self, masked: bool) -> None:
        self.masked = masked
        self.chunks: list[bytes] = []  # a frame still arriving, in the reads it came in
        self.have = 0  # bytes in chunks
        self.need = 0  # bytes chunks must reach before it is worth looking again

    def feed(self, data: bytes, limit: int) -> tuple[list[bytes], bytes]:
        """The messages of the whole binary frames in what has arrived, and the bytes from the
        first frame this reader does not take (``b""``: none), which go to websockets.

        ``limit``: the largest message allowed (the websocket's current max size).
        """
        if self.chunks:
            self.chunks.append(data)
            self.have += len(data)
            if self.have < self.need:
                return [], b""
            data = b"".join(self.chunks)
            self.chunks = []
            self.have = 0
        messages: list[bytes] = []
        pos, n = 0, len(data)
        masked = self.masked
        while pos < n:
            if n - pos < 2:
                return self._keep(messages, data, pos, 2)
            b1 = data[pos + 1]
            if data[pos] != _BINARY_FIN or bool(b1 & 0x80) is not masked:
                return messages, data[pos:] if pos else data
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                start += 2
            elif length == 127:
                start += 8
            if masked:
                start += 4
            if n < start:
                return self._keep(messages, data, pos, start - pos)
            if length == 126:
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            elif length == 127:
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            if length > limit:
                return messages, data[pos:] if pos else data
            end = start + length
            if end > n:
                return self._keep(messages, data, pos, end - pos)
            if masked:
                messages.append(apply_mask(data[start:end], data[start - 4 : start]))
            else:
                messages.append(data[start:end])
            pos = end
        return messages, b""

    def _keep(
        self, messages: list[bytes], data: bytes, pos: int, need: int
    ) -> tuple[list[bytes], bytes]:
        rest = data[pos:] if pos else data
        self.chunks = [rest]
        self.have = len(rest)
        self.need = need
        return messages, b""
