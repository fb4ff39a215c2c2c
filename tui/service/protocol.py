"""The control channel's framing, sans-I/O: length-prefixed msgpack maps, with limits.

Each message is a 4-byte big-endian length, then that many bytes of one msgpack map with string
keys. A length of 0 or over ``max_message``, bytes that are not msgpack, a value that is not a
map or a msgpack extension type are all a ``ProtocolError``: the peer that sent them is closed
(a service keeps serving its other clients). The decoder buffers at most one message.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

MAX_MESSAGE = 4 * 1024 * 1024  # a feed batch is split below this (see feed.py)
_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """The peer broke the framing: close that connection."""


def encode(message: dict[str, Any], max_message: int = MAX_MESSAGE) -> bytes:
    """One message, ready to write; ValueError if it is larger than the peer will accept."""
    payload = msgpack.packb(message, use_bin_type=True)
    if len(payload) > max_message:
        raise ValueError(f"message of {len(payload)} bytes is over the {max_message}-byte limit")
    return _HEADER.pack(len(payload)) + payload


def _no_extensions(code: int, data: bytes) -> Any:
    raise ProtocolError(f"msgpack extension type {code} is not part of the protocol")


class Decoder:
    """Feed it bytes as they arrive; it returns the whole messages they complete."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._buffer = bytearray()
        self._need: int | None = None  # the current message's length, once its header is in

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished message held so far."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """The messages completed by ``data``; raises ProtocolError on bad input."""
        self._buffer += data
        messages: list[dict[str, Any]] = []
        while True:
            if self._need is None:
                if len(self._buffer) < _HEADER.size:
                    return messages
                (length,) = _HEADER.unpack_from(self._buffer)
                if length == 0:
                    raise ProtocolError("empty message (length 0)")
                if length > self.max_message:
                    raise ProtocolError(
                        f"message of {length} bytes announced; the limit is {self.max_message}"
                    )
                del self._buffer[: _HEADER.size]
                self._need = length
            if len(self._buffer) < self._need:
                return messages
            payload = bytes(self._buffer[: self._need])
            del self._buffer[: self._need]
            self._need = None
            messages.append(_decode(payload))

    def at_boundary(self) -> bool:
        """True when no message is half received (a clean place for the peer to close)."""
        return self._need is None and not self._buffer


def _decode(payload: bytes) -> dict[str, Any]:
    try:
        value = msgpack.unpackb(
            payload, raw=False, use_list=False, strict_map_key=True, ext_hook=_no_extensions
        )
    except ProtocolError:
        raise
    except Exception as exc:  # msgpack raises several kinds for malformed input
        raise ProtocolError(f"not a msgpack message: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"expected a map, got {type(value).__name__}")
    return value
