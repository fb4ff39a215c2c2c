"""Sans-I/O reading of a ``text/event-stream`` body as it passes: the events, for the inspector.

Follows the WHATWG HTML "event stream interpretation": lines end in CRLF, LF or CR (a CR at the
end of one read and an LF at the start of the next are one line end); ``data`` lines join with
LF; ``event`` names the type; ``id`` sets the last event id (not when it holds NUL); lines
starting with ``:`` are comments; an empty line dispatches, unless no data came. Bounded: of a
line it keeps only what a preview needs (``preview`` bytes of data, 256 of a name or an id), and
counts the rest, so a line without end costs no memory. A chunked body is de-chunked first
(:class:`Dechunker`, tolerant: on a framing it cannot read it stops, and so does the reading).
"""

from __future__ import annotations

from typing import Final

from relay.http.stream_message import StreamMessage
from relay.http.ws_frames import PREVIEW_BYTES

_FIELD_KEEP: Final = 256  # bytes kept of an event name or an id
_BOM: Final = b"\xef\xbb\xbf"


class SseReader:
    """Feed it the response's payload bytes; it returns each event once its empty line passed."""

    def __init__(self, preview: int = PREVIEW_BYTES) -> None:
        self.preview_bytes = preview
        self._keep = preview + 16  # of a line: its field name, the colon, the preview
        self._line = bytearray()  # the current line's first bytes
        self._line_size = 0  # its full size so far
        self._after_cr = False  # the last read ended in CR: an LF now ends nothing
        self._start = True  # a BOM may come first
        self._data = bytearray()  # the event's data, up to the preview
        self._data_size = 0  # its full size
        self._data_lines = 0  # data lines in the event so far (0: nothing to dispatch)
        self._event = b""
        self.last_id = ""

    def feed(self, data: bytes, now: float) -> list[StreamMessage]:
        out: list[StreamMessage] = []
        if self._start:
            if len(self._line) + len(data) < 3 and _BOM.startswith(bytes(self._line) + data):
                self._line += data  # maybe a BOM, split: decide with the next read
                self._line_size += len(data)
                return out
            data, self._start = bytes(self._line) + data, False
            self._line.clear()
            self._line_size = 0
            if data.startswith(_BOM):
                data = data[3:]
        pos, n = 0, len(data)
        if self._after_cr and n and data[0] == 10:
            pos = 1
        self._after_cr = False
        while pos < n:
            cr, lf = data.find(b"\r", pos), data.find(b"\n", pos)
            end = min(e for e in (cr, lf) if e != -1) if cr != -1 or lf != -1 else -1
            if end == -1:
                self._take(data, pos, n)
                break
            self._take(data, pos, end)
            self._line_done(now, out)
            pos = end + 1
            if data[end] == 13:
                if pos < n and data[pos] == 10:
                    pos += 1
                elif pos == n:
                    self._after_cr = True
        return out

    def _take(self, data: bytes, start: int, end: int) -> None:
        room = self._keep - len(self._line)
        if room > 0:
            self._line += data[start : min(end, start + room)]
        self._line_size += end - start

    def _line_done(self, now: float, out: list[StreamMessage]) -> None:
        line, size = bytes(self._line), self._line_size
        self._line.clear()
        self._line_size = 0
        if not size:
            self._dispatch(now, out)
            return
        if line.startswith(b":"):
            return  # a comment
        name, colon, value = line.partition(b":")
        skipped = len(name) + len(colon)
        if value.startswith(b" "):
            value, skipped = value[1:], skipped + 1
        value_size = size - skipped  # the value's full size, cut or not
        if name == b"data":
            if self._data_lines:  # lines join with LF
                self._data_size += 1
                if len(self._data) < self.preview_bytes:
                    self._data += b"\n"
            self._data_lines += 1
            self._data_size += value_size
            room = self.preview_bytes - len(self._data)
            if room > 0:
                self._data += value[:room]
        elif name == b"event":
            self._event = value[:_FIELD_KEEP]
        elif name == b"id" and b"\x00" not in value:
            self.last_id = value[:_FIELD_KEEP].decode("utf-8", "replace")

    def _dispatch(self, now: float, out: list[StreamMessage]) -> None:
        if self._data_lines:
            event = self._event.decode("utf-8", "replace") or "message"
            preview = bytes(self._data[: self.preview_bytes])
            out.append(
                StreamMessage(
                    now, "out", "event", self._data_size, preview, event=event, id=self.last_id
                )
            )
        self._data.clear()
        self._data_size = 0
        self._data_lines = 0
        self._event = b""


class Dechunker:
    """The payload of a chunked body, read by read; stops (``broken``) on a framing it cannot
    read. Tolerant and small: the response framer has already checked the framing strictly."""

    def __init__(self) -> None:
        self._line = bytearray()
        self._remaining = 0  # chunk data still to come, then its CRLF
        self._crlf = 0  # bytes of the CRLF after a chunk's data still to skip
        self.done = False
        self.broken = False

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        pos, n = 0, len(data)
        while pos < n and not self.done and not self.broken:
            if self._remaining:
                take = min(self._remaining, n - pos)
                out += data[pos : pos + take]
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._crlf = 2
            elif self._crlf:
                take = min(self._crlf, n - pos)
                pos += take
                self._crlf -= take
            else:
                nl = data.find(b"\n", pos)
                end = n if nl == -1 else nl
                self._line += data[pos:end]
                if len(self._line) > 4096:
                    self.broken = True
                    break
                if nl == -1:
                    break
                pos = nl + 1
                size_text = bytes(self._line).split(b";")[0].strip()
                self._line.clear()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    self.broken = True
                    break
                if size == 0:
                    self.done = True
                self._remaining = size
        return bytes(out)
