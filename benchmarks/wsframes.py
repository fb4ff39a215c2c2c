"""The local app's WebSocket side: the upgrade handshake and a minimal RFC 6455 frame echo.

``handshake(head)`` reads the raw head of an upgrade request and returns the ``101`` response
(or None when it is not a WebSocket handshake). ``Echo.feed(data)`` takes bytes from the client
and returns what to write back: every data frame (text, binary, continuation) echoed with the
same opcode and FIN bit, unmasked (a server's frames are not masked), so a fragmented message
comes back fragmented the same way; a ping gets its pong, a pong is ignored, a close is answered
with a close carrying the same status code and ends the connection. No extensions are
negotiated (no permessage-deflate), no subprotocol, no UTF-8 check of text: the app stays a
thin, fast echo so that the direct measurement shows the client's and the kernel's cost.
"""

from __future__ import annotations

import base64
import hashlib
import re

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_KEY = re.compile(rb"^sec-websocket-key[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$", re.I | re.M)
_UPGRADE = re.compile(rb"^upgrade[ \t]*:[^\r\n]*\bwebsocket\b", re.I | re.M)

OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA


def accept_key(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def handshake(head: bytes) -> bytes | None:
    """The ``101 Switching Protocols`` answer to this request head, or None if it does not ask
    for a WebSocket (no ``Upgrade: websocket``, or no ``Sec-WebSocket-Key``)."""
    key = _KEY.search(head)
    if key is None or not key[1] or _UPGRADE.search(head) is None:
        return None
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key[1]) + b"\r\n\r\n"
    )


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte mask, repeated: one big-int XOR (fast for any size)."""
    n = len(payload)
    if not n:
        return payload
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def frame(first: int, payload: bytes) -> bytes:
    """An unmasked frame: ``first`` is the first byte (FIN bit and opcode)."""
    n = len(payload)
    if n < 126:
        head = bytes((first, n))
    elif n < 65536:
        head = bytes((first, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, 127)) + n.to_bytes(8, "big")
    return head + payload


class Echo:
    """The frame parser of one upgraded connection; ``closed`` once a close was answered."""

    __slots__ = ("buf", "closed")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.closed = False

    def feed(self, data: bytes) -> bytes:
        """Consume ``data``; return the frames to write back (maybe none)."""
        if self.closed:
            return b""
        buf = self.buf
        buf += data
        out = []
        pos, end = 0, len(buf)
        while end - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            length, at = second & 0x7F, pos + 2
            if length == 126:
                if end - at < 2:
                    break
                length, at = int.from_bytes(buf[at : at + 2], "big"), at + 2
            elif length == 127:
                if end - at < 8:
                    break
                length, at = int.from_bytes(buf[at : at + 8], "big"), at + 8
            mask = b""
            if second & 0x80:
                if end - at < 4:
                    break
                mask, at = bytes(buf[at : at + 4]), at + 4
            if end - at < length:
                break
            payload = bytes(buf[at : at + length])
            if mask:
                payload = unmask(payload, mask)
            pos = at + length
            opcode = first & 0x0F
            if opcode == OP_CLOSE:
                out.append(frame(0x80 | OP_CLOSE, payload[:2]))
                self.closed = True
                break
            if opcode == OP_PING:
                out.append(frame(0x80 | OP_PONG, payload))
            elif opcode != OP_PONG:
                out.append(frame(first & 0x8F, payload))  # RSV bits cleared: no extensions
        del buf[:pos]
        return b"".join(out)
