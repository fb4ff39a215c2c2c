"""The capture pipe's frames: exchanges to the writer process, its answers back (sans-I/O).

A frame is a 4-byte little-endian length, then that many bytes: a kind byte and its payload. An
exchange travels raw (heads and bodies as the agent captured them, secrets included: the pipe
never touches the disk; the writer process redacts before anything is stored). Encoding costs
one ``struct.pack`` and no copy of the bodies (the pieces go to the pipe as they are); decoding
checks every length against what is there, so a hostile or damaged frame is refused with a
reason, never read past, and the frames after it are still found.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass

from relay.events import Capture, RequestRecord

# Agent -> writer
RECORD = 1  # one exchange
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

_LEN = struct.Struct("<I")
_TOKEN = struct.Struct("<Q")
# seq, time, duration_ms, ttfb_ms (NaN: none), status, bytes_in, bytes_out, flags,
# then the lengths of tunnel, target, method, path, client, http_version, the two heads and bodies.
_FIXED = struct.Struct("<QdddiqqB10I")
_HAS_CAPTURE, _REQ_CUT, _RESP_CUT = 1, 2, 4
_RECORD_KIND = bytes((RECORD,))
MAX_TEXT = 64 * 1024  # tunnel, target, method, path, client, version: each at most this long


class FrameError(ValueError):
    """A frame that cannot be read: what is wrong with it (the decoder skips it)."""


@dataclass(slots=True)
class Item:
    """One decoded frame: its kind and payload (a record's payload decodes with decode_record)."""

    kind: int
    payload: bytes


def frame(kind: int, payload: bytes = b"") -> bytes:
    return _LEN.pack(1 + len(payload)) + bytes((kind,)) + payload


def token_frame(kind: int, token: int) -> bytes:
    return frame(kind, _TOKEN.pack(token))


def json_frame(kind: int, data: dict[str, str]) -> bytes:
    return frame(kind, json.dumps(data).encode())


def record_pieces(seq: int, tunnel: str, target: str, record: RequestRecord) -> list[bytes]:
    """One exchange as frame pieces to write one after the other (bodies are not copied).

    The writer sends batches (inspector.pipe_records); the store still reads single records
    (tools and tests write them)."""
    name = tunnel.encode()
    local = target.encode()
    method = record.method.encode()
    path = record.path.encode()
    client = record.client.encode()
    version = record.http_version.encode()
    capture = record.capture
    if capture is None:
        flags = 0
        req_head = resp_head = req_body = resp_body = b""
    else:
        flags = (
            _HAS_CAPTURE
            | (_REQ_CUT if capture.request_truncated else 0)
            | (_RESP_CUT if capture.response_truncated else 0)
        )
        req_head = capture.request_head
        resp_head = capture.response_head
        req_body = capture.request_body
        resp_body = capture.response_body
    ttfb = record.ttfb_ms
    lengths = (
        len(name),
        len(local),
        len(method),
        len(path),
        len(client),
        len(version),
        len(req_head),
        len(resp_head),
        len(req_body),
        len(resp_body),
    )
    fixed = _FIXED.pack(
        seq,
        record.time,
        record.duration_ms,
        math.nan if ttfb is None else ttfb,
        record.status,
        record.bytes_in,
        record.bytes_out,
        flags,
        *lengths,
    )
    start = _LEN.pack(1 + _FIXED.size + sum(lengths)) + _RECORD_KIND + fixed
    texts = b"".join((name, local, method, path, client, version, req_head, resp_head))
    return [start, texts, req_body, resp_body]


@dataclass(slots=True)
class DecodedRecord:
    seq: int
    tunnel: str
    target: str
    record: RequestRecord


def record_seq(payload: bytes) -> int | None:
    """The seq of a record payload, if it has one (to report a record that cannot be read)."""
    return _TOKEN.unpack_from(payload)[0] if len(payload) >= _TOKEN.size else None


def decode_record(payload: bytes) -> DecodedRecord:
    """A RECORD payload back into a record; FrameError says why it cannot be."""
    if len(payload) < _FIXED.size:
        raise FrameError(f"record of {len(payload)} bytes is shorter than its fixed part")
    seq, when, duration, ttfb, status, bytes_in, bytes_out, flags, *lengths = _FIXED.unpack_from(
        payload
    )
    if _FIXED.size + sum(lengths) != len(payload):
        raise FrameError(
            f"record {seq}: its parts add up to {_FIXED.size + sum(lengths)} bytes, "
            f"the frame holds {len(payload)}"
        )
    if any(n > MAX_TEXT for n in lengths[:6]):
        raise FrameError(f"record {seq}: a name or path longer than {MAX_TEXT} bytes")
    if not (math.isfinite(when) and math.isfinite(duration)) or not 0 <= status < 1000:
        raise FrameError(f"record {seq}: time, duration or status out of range")
    if bytes_in < 0 or bytes_out < 0 or flags > 7:
        raise FrameError(f"record {seq}: negative byte counts or unknown flags")
    parts = []
    pos = _FIXED.size
    for n in lengths:
        parts.append(payload[pos : pos + n])
        pos += n
    try:
        tunnel, target, method, path, client, version = (p.decode() for p in parts[:6])
    except UnicodeDecodeError as exc:
        raise FrameError(f"record {seq}: a name or path is not UTF-8 ({exc.reason})") from None
    capture = None
    if flags & _HAS_CAPTURE:
        capture = Capture(
            request_head=parts[6],
            response_head=parts[7],
            request_body=parts[8],
            response_body=parts[9],
            request_truncated=bool(flags & _REQ_CUT),
            response_truncated=bool(flags & _RESP_CUT),
        )
    record = RequestRecord(
        time=when,
        method=method,
        path=path,
        status=status,
        duration_ms=duration,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        client=client,
        stream=0,
        http_version=version,
        ttfb_ms=None if math.isnan(ttfb) else ttfb,
        capture=capture,
    )
    return DecodedRecord(seq, tunnel, target, record)


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
    ``skipped``), so a length gone wrong costs that frame, not the stream."""

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
                self.skipped += 1
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
