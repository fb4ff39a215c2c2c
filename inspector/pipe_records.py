"""A batch of exchanges as one frame, column by column, and the store's answers as runs (sans-I/O).

The capturing process adds the fields of each exchange (:data:`Row`) to one flat list and packs
a whole batch in a few C calls: the list is cut into columns (slices with a step), the numbers
packed by one ``struct`` call, the texts joined with NUL between them, the heads and bodies
joined (the data path has their lengths at hand). No Python runs per exchange: packing a record
at a time was a fifth of what capturing cost the agent. The store answers with runs, not one
pair per exchange: ``(first seq, first id, count)``, the first id -1 for exchanges it did not store.

Decoding checks every count and length against the frame before it slices anything, so a hostile
or damaged frame is refused with a :class:`FrameError` that says what is wrong.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from inspector.pipe_codec import MAX_TEXT, FrameError, frame
from relay.events import Capture, RequestRecord

RECORDS = 5  # agent -> store: a batch of exchanges with consecutive seqs (this module's layout)
TUNNEL = 6  # agent -> store: a tunnel id's name and local target, before any record that uses it

# One exchange as the capturing process queues it: as few fields as will do (each field costs
# the data path and the packing about 300 instructions per exchange). The status carries the
# cut flags and the tunnel: status | request cut << 16 (2: no capture) | response cut << 18 |
# tunnel id << 20, the id named once by a TUNNEL frame (a tunnel's name and local target are the
# same for all its exchanges: sent per exchange they were a third of the texts' bytes). The one
# text is the client's address: the method, target and HTTP version are read by the store from
# the request head, which every row carries (an exchange without a capture carries its request
# line alone, flagged NO_CAPTURE; an empty head marks an exchange the store must not keep). The
# four lengths the frame carries are taken when the batch is packed (a len() in C each). The
# last field is the running total of bytes submitted (the writer's bound), not packed.
Row = tuple[
    float, float, float,  # time, duration_ms, ttfb_ms (NaN: none)
    int, int, int,  # status, flags and tunnel id, bytes in, bytes out
    str,  # the client's address
    bytes, bytes, bytes, bytes,  # request head, response head, request body, response body
    int,
]  # fmt: skip
# The frame's columns: floats, integers (flags, bytes in and out, the four blobs' lengths), texts
# (the address), blobs (heads and bodies).
FLOATS, INTS, TEXTS, BLOBS = 3, 7, 1, 4
COLUMNS = FLOATS + 3 + TEXTS + BLOBS  # a Row's columns, the lengths not among them
ROW = COLUMNS + 1  # a row's items in the writer's flat outbox (the running total last)
# A batch's requests, for replays (inspector.originals): heads, bodies, flags, and their bytes.
Requests = tuple[Sequence[bytes], Sequence[bytes], Sequence[int], int]
NO_CAPTURE = 2  # the request's cut flag when the exchange had no capture at all
CUT_SHIFT, ANSWER_CUT_SHIFT, TUNNEL_SHIFT = 16, 18, 20
MAX_TUNNELS = 1 << 42  # tunnel ids fit the flags' 64 bits (one per name and target ever used)
MAX_NAMED = 1 << 16  # names the store holds at most (a process uses a handful)
_SEP = "\0"  # between texts: none of them holds one (no address has one)
# A request head's first line, as the relay lets it through (method, target, version); a target
# is read as Latin-1, as the agent's observer reads it.
_REQUEST_LINE = re.compile(rb"([-!#$%&'*+.^_`|~0-9A-Za-z]+) ([^ ]+) HTTP/([0-9]\.[0-9])\r?\n")

_HEAD = struct.Struct("<QII")  # first seq, count, bytes of the UTF-8 texts
_TUNNEL_ID = struct.Struct("<Q")
_RUN = struct.Struct("<QqI")  # first seq, first id, count
_START = struct.Struct("<IB")  # the frame's length and kind (pipe_codec's framing)
MAX_ROWS = 1 << 20  # exchanges per frame at most (the writer's queue_size is far below)


def pack_batch(first_seq: int, flat: list[Any]) -> tuple[list[bytes], Requests]:
    """The RECORDS frame of the rows in ``flat`` (each :data:`Row`'s ROW items, one row after the
    other; seqs first_seq, first_seq + 1, ...) as pieces to write, and their requests, for
    replays: heads, bodies, flags, and the bytes of those heads and bodies.

    Numbers go through ``struct`` a column at a time (an ``array`` built from an iterable parses
    each item with PyArg_Parse: several times the cost); texts are joined with NUL between them
    (lengths cost a ``len`` call each)."""
    count = len(flat) // ROW
    # A column is a slice with a step (references copied in C, unpacked with * in one go): no
    # tuple per exchange to make, for the collector to walk and untrack, and to free, as rows
    # turned into columns by zip(*rows) had (a tenth of the capture path).
    # Spelled out, not a generator: under light load a batch holds a few exchanges, and a
    # generator's resumes cost more than the slices.
    t0, t1, t2 = flat[0::ROW], flat[1::ROW], flat[2::ROW]
    n0, n1, n2 = flat[3::ROW], flat[4::ROW], flat[5::ROW]
    text, b0, b1, b2, b3 = flat[6::ROW], flat[7::ROW], flat[8::ROW], flat[9::ROW], flat[10::ROW]
    texts = _SEP.join(text)
    if texts.count(_SEP) != count - 1:  # a NUL in an address (none has one)
        # Those exchanges go with no address and an empty request head: not stored, counted.
        for i, client in enumerate(text):
            if _SEP in client:
                text[i], b0[i] = "", b""
        texts = _SEP.join(text)
    lengths = (*map(len, b0), *map(len, b1), *map(len, b2), *map(len, b3))
    kept = sum(lengths[:count]) + sum(lengths[2 * count : 3 * count])  # the requests' bytes
    numbers = struct.pack(
        f"<{FLOATS * count}d{INTS * count}q", *t0, *t1, *t2, *n0, *n1, *n2, *lengths
    )
    encoded = texts.encode("utf-8", "surrogatepass")
    head = _HEAD.pack(first_seq, count, len(encoded))
    # One copy of the bodies, into the frame (a batch is bounded by the writer's queue_bytes).
    body = b"".join((head, numbers, encoded, *b0, *b1, *b2, *b3))
    return [_START.pack(1 + len(body), RECORDS), body], (b0, b2, n0, kept)


def tunnel_frame(tunnel_id: int, tunnel: str, target: str) -> bytes:
    """A TUNNEL frame: the name and local target that records with ``tunnel_id`` belong to."""
    names = f"{tunnel}{_SEP}{target}".encode("utf-8", "surrogatepass")
    return frame(TUNNEL, _TUNNEL_ID.pack(tunnel_id) + names)


def decode_tunnel(payload: bytes) -> tuple[int, str, str]:
    """A TUNNEL payload back into (id, tunnel, target); FrameError says why not."""
    if len(payload) < _TUNNEL_ID.size:
        raise FrameError(f"a tunnel's frame of {len(payload)} bytes is shorter than its id")
    (tunnel_id,) = _TUNNEL_ID.unpack_from(payload)
    if tunnel_id >= MAX_TUNNELS:
        raise FrameError(f"tunnel id {tunnel_id} (below {MAX_TUNNELS} expected)")
    try:
        names = payload[_TUNNEL_ID.size :].decode("utf-8").split(_SEP)
    except UnicodeDecodeError as exc:
        raise FrameError(f"tunnel {tunnel_id}: its name is not UTF-8 ({exc.reason})") from None
    if len(names) != 2:
        raise FrameError(f"tunnel {tunnel_id}: {len(names)} texts (a name and a target expected)")
    if max(map(len, names)) > MAX_TEXT:
        raise FrameError(f"tunnel {tunnel_id}: a name or target longer than {MAX_TEXT} bytes")
    return tunnel_id, names[0], names[1]


def records_seqs(payload: bytes) -> tuple[int, int] | None:
    """(first seq, count) of a RECORDS payload if its head is readable (to answer it dropped)."""
    if len(payload) < _HEAD.size:
        return None
    first, count, _ = _HEAD.unpack_from(payload)
    return (first, count) if 0 < count <= MAX_ROWS else None


def decode_records(
    payload: bytes, tunnels: Mapping[int, tuple[str, str]]
) -> list[tuple[int, str, str, RequestRecord]]:
    """A RECORDS payload back into (seq, tunnel, target, record), ``tunnels`` naming the ids
    (from the TUNNEL frames before it); FrameError says why not."""
    if len(payload) < _HEAD.size:
        raise FrameError(f"a batch of {len(payload)} bytes is shorter than its head")
    first, count, text_size = _HEAD.unpack_from(payload)
    if not 0 < count <= MAX_ROWS:
        raise FrameError(f"a batch of {count} exchanges (1 to {MAX_ROWS} expected)")
    fixed = _HEAD.size + count * 8 * (FLOATS + INTS)
    if fixed + text_size > len(payload):
        raise FrameError(
            f"batch {first}: {count} exchanges need at least {fixed + text_size} bytes, "
            f"the frame holds {len(payload)}"
        )
    numbers = struct.unpack_from(f"<{FLOATS * count}d{INTS * count}q", payload, _HEAD.size)
    floats, ints = numbers[: FLOATS * count], numbers[FLOATS * count :]
    blob_lengths = ints[3 * count :]
    if min(blob_lengths) < 0 or fixed + text_size + sum(blob_lengths) != len(payload):
        raise FrameError(f"batch {first}: its lengths do not add up to the frame's size")
    try:
        texts = payload[fixed : fixed + text_size].decode("utf-8").split(_SEP)
    except UnicodeDecodeError as exc:
        raise FrameError(f"batch {first}: a client's address is not UTF-8 ({exc.reason})") from None
    if len(texts) != TEXTS * count:
        raise FrameError(f"batch {first}: {len(texts)} texts for {count} exchanges")
    if max(map(len, texts)) > MAX_TEXT:
        raise FrameError(f"batch {first}: a client's address longer than {MAX_TEXT} bytes")
    blobs = _cut(payload, fixed + text_size, blob_lengths)
    out = []
    for i in range(count):
        seq = first + i
        when, duration, ttfb = floats[i], floats[count + i], floats[2 * count + i]
        flags, bytes_in, bytes_out = ints[i], ints[count + i], ints[2 * count + i]
        status = flags & 0xFFFF
        req_cut, resp_cut = flags >> CUT_SHIFT & 3, flags >> ANSWER_CUT_SHIFT & 3
        if not (math.isfinite(when) and math.isfinite(duration)) or not 0 <= status < 1000:
            raise FrameError(f"record {seq}: time, duration or status out of range")
        if bytes_in < 0 or bytes_out < 0 or req_cut == 3 or resp_cut > 1 or flags < 0:
            raise FrameError(f"record {seq}: negative byte counts or unknown flags")
        names = tunnels.get(flags >> TUNNEL_SHIFT)
        if names is None:
            raise FrameError(f"record {seq}: tunnel id {flags >> TUNNEL_SHIFT} was never named")
        tunnel, target = names
        method, path, version = _request_line(seq, blobs[i])
        client = texts[i]
        capture = None
        if req_cut != NO_CAPTURE:
            capture = Capture(
                blobs[i],
                blobs[count + i],
                blobs[2 * count + i],
                blobs[3 * count + i],
                bool(req_cut),
                bool(resp_cut),
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
        out.append((seq, tunnel, target, record))
    return out


def is_request_line(head: bytes) -> bool:
    """Whether ``head`` starts with a request line the store reads and keeps."""
    try:
        return _request_line(0, head)[0] != ""
    except FrameError:
        return False


def _request_line(seq: int, head: bytes) -> tuple[str, str, str]:
    """(method, target, version) of a record's request head; ("", "", "") for an empty head (the
    writer's mark for an exchange not to keep); FrameError for a head that does not start with a
    request line."""
    if not head:
        return "", "", ""
    line = _REQUEST_LINE.match(head)
    if line is None:
        raise FrameError(f"record {seq}: its request head does not start with a request line")
    if len(line[2]) > MAX_TEXT:
        raise FrameError(f"record {seq}: a path longer than {MAX_TEXT} bytes")
    if b"\0" in line[2]:
        return "", "", ""  # a path the store does not keep (as a NUL in a text always was)
    return line[1].decode("ascii"), line[2].decode("latin-1"), line[3].decode("ascii")


def _cut(data: bytes, pos: int, lengths: tuple[int, ...]) -> list[bytes]:
    out = []
    for n in lengths:
        out.append(data[pos : pos + n])
        pos += n
    return out


def runs_frame(kind: int, runs: list[tuple[int, int, int]]) -> bytes:
    """STORED: (first seq, first id, count) runs; first id -1: those seqs were not stored."""
    return frame(kind, b"".join(_RUN.pack(*run) for run in runs))


def decode_runs(payload: bytes) -> list[tuple[int, int, int]]:
    if len(payload) % _RUN.size:
        raise FrameError(f"{len(payload)} bytes are not whole (seq, id, count) runs")
    runs = [(int(s), int(i), int(n)) for s, i, n in _RUN.iter_unpack(payload)]
    if any(n == 0 for _, _, n in runs):
        raise FrameError("a run of no exchanges")
    return runs


def stored_pairs(payload: bytes) -> list[tuple[int, int]]:
    """A STORED payload's stored exchanges as (seq, id) pairs (tests, tools)."""
    return [(s + k, i + k) for s, i, n in decode_runs(payload) if i >= 0 for k in range(n)]


def dropped_seqs(payload: bytes) -> list[int]:
    """A STORED payload's seqs that were not stored (tests, tools)."""
    return [s + k for s, i, n in decode_runs(payload) if i < 0 for k in range(n)]
