"""The capture pipe's frames: exchanges to the writer process, its answers back (sans-I/O).

A frame is a 4-byte little-endian length, then that many bytes: a kind byte and its payload.
Exchanges travel raw in batch frames (:mod:`inspector.pipe_records`: heads and bodies as the agent
captured them, secrets included: the pipe never touches the disk; the writer process redacts
before anything is stored). Decoding checks every length against what is there, so a hostile or
damaged frame is refused with a reason, never read past, and the frames after it are still found.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

# Agent -> writer
# Kind 1 was RECORD, one exchange per frame: retired (exchanges go in RECORDS batches, see
# inspector.pipe_records). Never reuse it: the store refuses it like any kind it does not know.
FLUSH = 2  # token: answer FLUSHED once everything before it is stored
INDEXED = 3  # token: answer INDEXED once the body index has caught up too
MESSAGES = 4  # an open connection's new messages (inspector.message_frames), previews redacted
# Writer -> agent
READY = 16  # the store is open: the writer takes exchanges
OPEN_FAILED = 17  # JSON {"kind", "path", "message"}: the store could not be opened; it exits
STORED = 18  # runs (first seq, first id or -1: not stored, count), in seq order (pipe_records)
FLUSHED = 20  # token
INDEXED_DONE = 21  # token
FAILED = 22  # JSON {"kind", "path", "message"}: the store failed while running; writing stops

# Never on the wire: the decoder's word for a frame over its bound, skipped unread. Its payload
# is the frame's kind byte and up to OVERSIZED_PREFIX bytes of its payload (a batch's head: the
# store answers those exchanges as not stored rather than leaving them unanswered).
OVERSIZED = 0
OVERSIZED_PREFIX = 16

_LEN = struct.Struct("<I")
_TOKEN = struct.Struct("<Q")
MAX_TEXT = 64 * 1024  # tunnel, target, path, client: each at most this long


class FrameError(ValueError):
    """A frame that cannot be read: what is wrong with it (the decoder skips it)."""


@dataclass(slots=True)
class Item:
    """One decoded frame: its kind and payload (a batch's decodes with pipe_records)."""

    kind: int
    payload: bytes


def frame(kind: int, payload: bytes = b"") -> bytes:
    return _LEN.pack(1 + len(payload)) + bytes((kind,)) + payload


def token_frame(kind: int, token: int) -> bytes:
    return frame(kind, _TOKEN.pack(token))


def json_frame(kind: int, data: dict[str, str]) -> bytes:
    return frame(kind, json.dumps(data).encode())


def decode_token(payload: bytes) -> int:
    if len(payload) != _TOKEN.size:
        raise FrameError(f"a token is {_TOKEN.size} bytes, not {len(payload)}")
    return int(_TOKEN.unpack(payload)[0])


def decode_json(payload: bytes) -> dict[str, str]:
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise FrameError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise FrameError("not an object of strings")
    return data


class FrameDecoder:
    """Bytes in, whole frames out. A frame over ``max_frame`` is skipped unread (and counted in
    ``skipped``), so a length gone wrong costs that frame, not the stream; what it began with
    comes out as an :data:`OVERSIZED` item."""

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self.skipped = 0
        self._buffer = bytearray()
        self._skip = 0  # bytes of an oversized frame still to throw away

    def feed(self, data: bytes) -> list[Item]:
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        buffer = self._buffer
        buffer += data
        out: list[Item] = []
        pos = 0
        end = len(buffer)
        while end - pos >= _LEN.size:
            (size,) = _LEN.unpack_from(buffer, pos)
            if size == 0 or size > self.max_frame:
                start = pos + _LEN.size
                keep = min(size, 1 + OVERSIZED_PREFIX)
                if end - start < keep:
                    break  # its kind and first bytes are not all here yet
                self.skipped += 1
                if size:
                    out.append(Item(OVERSIZED, bytes(buffer[start : start + keep])))
                pos += _LEN.size
                available = min(size, end - pos)
                pos += available
                self._skip = size - available
                continue
            if end - pos - _LEN.size < size:
                break
            start = pos + _LEN.size
            out.append(Item(buffer[start], bytes(buffer[start + 1 : start + size])))
            pos = start + size
        del buffer[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes of a frame begun but not complete (at EOF: a frame cut short)."""
        return len(self._buffer)
