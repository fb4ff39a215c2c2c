"""Messages still arriving on stored exchanges: the writer stores them in batches, redacted.

A WebSocket exchange is reported at its 101, before any message; its
:class:`~relay.events.MessageLog` keeps filling on the agent's thread. The writer
:meth:`watch`-es each stored exchange that has a log and, every ``MESSAGES_EVERY`` seconds
while any is open (and once more when it stops), appends what came since, so
``molehill requests show`` and the API see a long-lived connection's messages while it lasts.
"""

from __future__ import annotations

from dataclasses import replace

from inspector.message_rows import MessageUpdate
from inspector.model import header_value, payload
from inspector.redact import Redactor
from relay.events import Capture, MessageLog, StreamMessage, parse_header_lines

MESSAGES_EVERY = 0.5  # seconds between batches of messages while connections are open


class _Watched:
    __slots__ = ("done", "log", "secrets", "state")

    def __init__(self, log: MessageLog, secrets: list[bytes]) -> None:
        self.log = log
        self.secrets = secrets
        self.done = 0  # messages stored so far
        self.state: tuple[int, str, bool] | None = None  # (dropped, note, closed) last stored


class LiveMessages:
    """The exchanges whose messages the writer still has to store."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._watched: dict[int, _Watched] = {}

    def __bool__(self) -> bool:
        return bool(self._watched)

    def watch(self, exchange_id: int, capture: Capture) -> None:
        if capture.messages is None:
            return
        head = capture.request_head
        body = payload(head, capture.request_body)
        kind = header_value(parse_header_lines(head), "content-type") or ""
        # The request's secrets (a token in the query, a cookie) are scrubbed from previews too.
        self._watched[exchange_id] = _Watched(
            capture.messages, self.redactor.secrets(head, body, kind)
        )

    def updates(self) -> list[MessageUpdate]:
        """What came since the last call; exchanges whose connection ended are then dropped."""
        out = []
        for exchange_id, w in list(self._watched.items()):
            log = w.log
            closed = log.closed  # read first: once closed, every message is already in
            new = log.messages[w.done :]
            state = (log.dropped, log.note, closed)
            if new or state != w.state:
                out.append(
                    MessageUpdate(
                        exchange_id,
                        log.protocol,
                        w.done,
                        [self._redacted(m, w.secrets) for m in new],
                        *state,
                    )
                )
                w.done += len(new)
                w.state = state
            if closed:
                del self._watched[exchange_id]
        return out

    def _redacted(self, m: StreamMessage, secrets: list[bytes]) -> StreamMessage:
        if m.compressed and not m.preview:
            return m
        r = self.redactor
        preview = r.scrub(
            r.body(m.preview, "application/json" if _json(m.preview) else ""), secrets
        )
        return m if preview == m.preview else replace(m, preview=preview)


def _json(preview: bytes) -> bool:
    return preview.lstrip()[:1] in (b"{", b"[")
