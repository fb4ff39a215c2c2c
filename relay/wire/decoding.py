"""Decoding molehill messages with limits: bytes in, frames out, nothing allocated on a claim.

Messages are read here, not by ``msgpack.unpackb``. msgpack's limits (``max_array_len`` and the
like) bound each array, map, str and bin on its own, but not how many of them a message holds,
nor how deep they nest: 16 MiB of nested empty arrays, none longer than 4096, still unpacks into
16 million lists (1.2 GB and 14 s on the CI machine). This reader knows what a message may hold
and refuses anything else at its first byte, before allocating for it (see the comment below).
"""

from __future__ import annotations

import struct
from typing import Any

from relay.wire.frames import (
    _SESSION_FRAMES,
    CREDIT,
    DATA,
    END,
    ERROR,
    GOAWAY,
    HELLO,
    MAX_MESSAGE,
    MAX_STREAM_ID,
    MAX_TEXT,
    MAX_WINDOW,
    OPEN,
    PING,
    PONG,
    RESET,
    WELCOME,
    Credit,
    Data,
    End,
    Error,
    Frame,
    GoAway,
    Hello,
    Open,
    Ping,
    Pong,
    ProtocolError,
    Reset,
    Welcome,
)

_U8, _U16, _U32 = struct.Struct(">B"), struct.Struct(">H"), struct.Struct(">I")

# Field types per frame type, checked on decode. str means text; float accepts ints too.
_SCHEMA: dict[int, tuple[Any, tuple[type, ...]]] = {
    HELLO: (Hello, (int, str, str, str, int, dict)),
    WELCOME: (Welcome, (str, str, str, float, float, int)),
    ERROR: (Error, (str, str)),
    OPEN: (Open, (str, int)),
    DATA: (Data, (bytes,)),
    END: (End, ()),
    RESET: (Reset, (str, str)),
    CREDIT: (Credit, (int,)),
    PING: (Ping, (int,)),
    PONG: (Pong, (int,)),
    GOAWAY: (GoAway, (str,)),
}


def _check_field(value: Any, kind: Any, type_name: str) -> Any:
    if kind is float:
        if type(value) not in (int, float):
            raise ProtocolError(f"{type_name}: expected a number, got {type(value).__name__}")
        return float(value)
    if type(value) is not kind:
        raise ProtocolError(f"{type_name}: expected {kind.__name__}, got {type(value).__name__}")
    if kind is str and len(value) > MAX_TEXT:
        raise ProtocolError(f"{type_name}: text field longer than {MAX_TEXT}")
    if kind is dict and (len(value) > 32 or not all(type(k) is str for k in value)):
        raise ProtocolError(f"{type_name}: options must be a small map with text keys")
    if kind is int and not 0 <= value <= 2**63:
        raise ProtocolError(f"{type_name}: integer out of range")
    return value


def _build(item: Any) -> Frame:
    if type(item) is not list or len(item) < 2:
        raise ProtocolError("a frame must be an array [type, stream, ...]")
    kind, stream = item[0], item[1]
    if type(kind) is not int or type(stream) is not int:
        raise ProtocolError("frame type and stream id must be integers")
    if kind == DATA and len(item) == 3 and type(item[2]) is bytes and 0 < stream <= MAX_STREAM_ID:
        return Data(stream, item[2])  # fast path for the commonest frame
    if kind == HELLO and len(item) == 7:
        item = [*item, {}]  # agents of 0.1.0 sent no options: they asked for none
    try:
        cls, types = _SCHEMA[kind]
    except KeyError:
        raise ProtocolError(f"unknown frame type {kind}") from None
    name = cls.__name__
    if len(item) != 2 + len(types):
        raise ProtocolError(f"{name}: expected {len(types)} fields, got {len(item) - 2}")
    fields = [_check_field(v, t, name) for v, t in zip(item[2:], types, strict=True)]
    if cls in _SESSION_FRAMES:
        if stream != 0:
            raise ProtocolError(f"{name} belongs to the session, stream id must be 0")
        frame: Frame = cls(*fields)
        return frame
    if not 0 < stream <= MAX_STREAM_ID:
        raise ProtocolError(f"{name}: stream id {stream} out of range")
    if kind == CREDIT and not 0 < int(fields[0]) <= MAX_WINDOW:
        raise ProtocolError(f"Credit: amount {fields[0]} out of range")
    frame = cls(stream, *fields)
    return frame


# -- decoding ---------------------------------------------------------------------------------
#
# Messages are read here, not by msgpack.unpackb. msgpack's limits (max_array_len and the like)
# bound each array, map, str and bin on its own, but not how many of them a message holds, nor
# how deep they nest: 16 MiB of nested empty arrays, none longer than 4096, still unpacks into
# 16 million lists (1.2 GB and 14 s on the CI machine). This reader knows what a message may hold
# and refuses anything else at its first byte, before allocating for it:
#
# * a message is an array of 1 to MAX_FRAMES frames (the header gives the count: checked first);
# * a frame is an array of 2 to 2 + MAX_FIELDS scalars (nil, bool, int, float, str, bin);
# * the one container inside a frame is HELLO's options: a map of at most MAX_OPTIONS entries,
#   text keys, each value a scalar or an array of at most MAX_OPTION_ITEMS scalars; and a HELLO
#   travels alone in its message;
# * a str is at most MAX_TEXT characters; every claimed length must fit in the bytes present;
#   ext types (timestamps included) are refused.
#
# So decoding costs time and memory in proportion to the message's size, with a small constant,
# whatever its bytes claim. DATA frames, the bulk of the traffic, take a fast path that reads
# their five to eleven bytes of header in place and slices the payload out once.

MAX_FRAMES = 4096  # frames in one message: senders start a new message at this count
MAX_FIELDS = 6  # fields after [type, stream]: HELLO has the most
MAX_OPTIONS = 32  # entries in HELLO's options map
# Items in one list-valued option. The relay accepts up to 256 networks in allow / deny and says
# so in a bad_options ERROR; this bound, looser, only keeps a HELLO's size in memory in check.
MAX_OPTION_ITEMS = 1024
_TEXT_BYTES = 4 * MAX_TEXT  # the most UTF-8 bytes MAX_TEXT characters take
_U64 = struct.Struct(">Q")

_FIXED: dict[int, struct.Struct] = {
    0xCA: struct.Struct(">f"),
    0xCB: struct.Struct(">d"),
    0xCC: _U8,
    0xCD: _U16,
    0xCE: _U32,
    0xCF: _U64,
    0xD0: struct.Struct(">b"),
    0xD1: struct.Struct(">h"),
    0xD2: struct.Struct(">i"),
    0xD3: struct.Struct(">q"),
}
_CONSTANTS: dict[int, Any] = {0xC0: None, 0xC2: False, 0xC3: True}
# str and bin with a length prefix: (the prefix, whether it is text)
_SIZED: dict[int, tuple[struct.Struct, bool]] = {
    0xC4: (_U8, False),
    0xC5: (_U16, False),
    0xC6: (_U32, False),
    0xD9: (_U8, True),
    0xDA: (_U16, True),
    0xDB: (_U32, True),
}


def _sized(m: bytes, i: int, size: int, text: bool) -> tuple[Any, int]:
    if text and size > _TEXT_BYTES:
        raise ProtocolError(f"text field longer than {MAX_TEXT}")
    end = i + size
    if end > len(m):
        raise ProtocolError(f"a value claims {size} bytes, the message holds {len(m) - i} more")
    if not text:
        return m[i:end], end
    try:
        value = m[i:end].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("text field is not UTF-8") from None
    if len(value) > MAX_TEXT:
        raise ProtocolError(f"text field longer than {MAX_TEXT}")
    return value, end


def _scalar(m: bytes, i: int) -> tuple[Any, int]:
    """The scalar at ``m[i]`` and the index after it; an array or a map there is refused."""
    b = m[i]
    if b < 0x80:
        return b, i + 1
    if b >= 0xE0:
        return b - 0x100, i + 1
    if 0xA0 <= b <= 0xBF:
        return _sized(m, i + 1, b & 0x1F, True)
    fixed = _FIXED.get(b)
    if fixed is not None:
        return fixed.unpack_from(m, i + 1)[0], i + 1 + fixed.size
    if b in _CONSTANTS:
        return _CONSTANTS[b], i + 1
    sized = _SIZED.get(b)
    if sized is not None:
        prefix, text = sized
        return _sized(m, i + 1 + prefix.size, prefix.unpack_from(m, i + 1)[0], text)
    if b <= 0x9F or 0xDC <= b <= 0xDF:
        raise ProtocolError("a frame field holds an array or a map: frames are flat")
    raise ProtocolError(f"msgpack type 0x{b:02x} has no place in a frame")  # ext, 0xc1


def _array_len(m: bytes, i: int) -> tuple[int, int]:
    """The length of the array whose header is at ``m[i]`` and the index after the header;
    -1 if no array starts there."""
    b = m[i]
    if 0x90 <= b <= 0x9F:
        return b & 0x0F, i + 1
    if b == 0xDC:
        return _U16.unpack_from(m, i + 1)[0], i + 3
    if b == 0xDD:
        return _U32.unpack_from(m, i + 1)[0], i + 5
    return -1, i


def _options(m: bytes, i: int) -> tuple[dict[str, Any], int]:
    b = m[i]
    if b <= 0x8F:
        count, i = b & 0x0F, i + 1
    elif b == 0xDE:
        count, i = _U16.unpack_from(m, i + 1)[0], i + 3
    else:
        count, i = _U32.unpack_from(m, i + 1)[0], i + 5
    if count > MAX_OPTIONS:
        raise ProtocolError(f"Hello: options must be a small map (at most {MAX_OPTIONS} entries)")
    options: dict[str, Any] = {}
    for _ in range(count):
        key, i = _scalar(m, i)
        if type(key) is not str:
            raise ProtocolError("Hello: options must be a small map with text keys")
        items, after = _array_len(m, i)
        if items < 0:
            value, i = _scalar(m, i)
        elif items > MAX_OPTION_ITEMS:
            raise ProtocolError(f"Hello: option {key!r} has more than {MAX_OPTION_ITEMS} items")
        else:
            value, i = [], after
            for _ in range(items):
                item, i = _scalar(m, i)
                value.append(item)
        options[key] = value
    return options, i


def _frame(m: bytes, i: int) -> tuple[Frame, int]:
    """The frame at ``m[i]`` (any type, any encoding) and the index after it."""
    size, i = _array_len(m, i)
    if size < 2:
        raise ProtocolError("a frame must be an array [type, stream, ...]")
    if size > 2 + MAX_FIELDS:
        raise ProtocolError(f"a frame has at most {MAX_FIELDS} fields, not {size - 2}")
    kind, i = _scalar(m, i)
    item = [kind]
    value: Any  # a dict (HELLO's options) or a scalar: compiled code checks the declared type
    for at in range(1, size):
        b = m[i]
        if at == 7 and kind == HELLO and (0x80 <= b <= 0x8F or b == 0xDE or b == 0xDF):
            value, i = _options(m, i)
        else:
            value, i = _scalar(m, i)
        item.append(value)
    return _build(item), i


def _uint(m: bytes, i: int) -> tuple[int, int]:
    """The unsigned integer at ``m[i]`` and the index after it; (-1, i) if there is none."""
    b = m[i]
    if b < 0x80:
        return b, i + 1
    if b == 0xCD:
        return (m[i + 1] << 8) | m[i + 2], i + 3
    if b == 0xCE:
        return _U32.unpack_from(m, i + 1)[0], i + 5
    if b == 0xCC:
        return m[i + 1], i + 2
    if b == 0xCF:
        return _U64.unpack_from(m, i + 1)[0], i + 9
    return -1, i


class FrameDecoder:
    """Turns websocket messages into frames; a frame never spans two messages."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self.max_message = max_message

    def decode(self, message: bytes, max_frames: int = MAX_FRAMES) -> list[Frame]:
        """Return the frames in one message, or raise ProtocolError.

        ``max_frames`` (at most MAX_FRAMES) lowers the cap for one message: a relay waiting
        for a HELLO, which travels alone, passes 1 and refuses a batch at its first byte.
        """
        size = len(message)
        if not size:
            raise ProtocolError("empty message")
        if size > self.max_message:
            raise ProtocolError(f"message larger than {self.max_message} bytes")
        m = message if type(message) is bytes else bytes(message)
        try:
            count = m[0] - 0x90
            if 0 < count < 16:
                i = 1
            else:
                count, i = _array_len(m, 0)
                if count < 1:
                    raise ProtocolError("a message must be a non-empty array of frames")
            if count > max_frames or count > MAX_FRAMES:
                raise ProtocolError(
                    f"{count} frames in one message; at most {min(max_frames, MAX_FRAMES)}"
                )
            if 3 * count > size - i:  # the shortest frame, [type, stream], takes three bytes
                raise ProtocolError(f"a message of {size} bytes cannot hold {count} frames")
            frames: list[Frame] = []
            append = frames.append
            for _ in range(count):
                # The frames of the data path, in their usual encoding, are read in place.
                kind = m[i + 1]
                if m[i] == 0x93:
                    if kind == 5:  # DATA
                        sid = m[i + 2]
                        j = i + 3
                        if sid >= 0x80:
                            if sid == 0xCD:
                                sid, j = (m[i + 3] << 8) | m[i + 4], i + 5
                            elif sid == 0xCC:
                                sid, j = m[i + 3], i + 4
                            elif sid == 0xCE:
                                sid, j = _U32.unpack_from(m, i + 3)[0], i + 7
                                if sid > MAX_STREAM_ID:
                                    sid = 0
                            else:
                                sid = 0
                        if sid:
                            b = m[j]
                            if b == 0xC4:
                                end = j + 2 + m[j + 1]
                                j += 2
                            elif b == 0xC5:
                                end = j + 3 + ((m[j + 1] << 8) | m[j + 2])
                                j += 3
                            elif b == 0xC6:
                                end = j + 5 + _U32.unpack_from(m, j + 1)[0]
                                j += 5
                            else:
                                end = size + 1
                            if end <= size:
                                append(Data(sid, m[j:end]))
                                i = end
                                continue
                    elif kind == CREDIT:
                        sid, j = _uint(m, i + 2)
                        amount, j = _uint(m, j)
                        if 0 < sid <= MAX_STREAM_ID and 0 < amount <= MAX_WINDOW:
                            append(Credit(sid, amount))
                            i = j
                            continue
                    elif kind in (PING, PONG) and m[i + 2] == 0:
                        payload, j = _uint(m, i + 3)
                        if 0 <= payload <= 2**63:
                            append(Ping(payload) if kind == PING else Pong(payload))
                            i = j
                            continue
                elif kind == END and m[i] == 0x92:
                    sid, j = _uint(m, i + 2)
                    if 0 < sid <= MAX_STREAM_ID:
                        append(End(sid))
                        i = j
                        continue
                # Every other frame, and these in other encodings or wrong: the general way.
                frame, i = _frame(m, i)
                if count > 1 and type(frame) is Hello:
                    raise ProtocolError("a HELLO travels alone in its message")
                append(frame)
        except (IndexError, struct.error):
            raise ProtocolError("message cut short inside a frame") from None
        if i != size:
            raise ProtocolError(f"{size - i} bytes after the message's frames")
        return frames


def decode_all(message: bytes) -> list[Frame]:
    """Decode one message (tests and one-off use)."""
    return FrameDecoder().decode(message)
