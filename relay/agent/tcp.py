"""The agent's end of one TCP tunnel connection: bytes to the local service, no HTTP observer.

A TCP tunnel carries any protocol (PostgreSQL, SSH...), so nothing here parses a byte: each
connection is piped both ways with the stream's flow control and half-close, and reported as
one :class:`ConnectionRecord` when it closes (who, how long, bytes each way, how it ended).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from relay.events import ConnectionRecord
from relay.transport.bridge import StreamBridge

if TYPE_CHECKING:
    from relay.agent.client import AgentLink


class TcpConnection(StreamBridge):
    """One stream's connection to the local service; bytes may arrive before it connects."""

    def __init__(self, link: AgentLink, sid: int, client: str) -> None:
        super().__init__(link, link.wire.streams[sid])
        self.agent_link = link
        self.client = client
        self.early: list[bytes] | None = []  # DATA that arrived while connecting
        # Grant no credit until the local service accepts: early bytes stay within one window.
        self.writing_paused = True
        self.early_end = False
        self.opened = time.time()
        self._started = time.perf_counter()
        self.reported = False

    def write(self, data: bytes) -> None:
        if self.early is not None:
            self.early.append(data)
        else:
            super().write(data)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.block_reading(self.agent_link.blocked)
        early, self.early = self.early or [], None
        for chunk in early:
            transport.write(chunk)  # type: ignore[attr-defined]
        self.resume_writing()
        if self.early_end:
            self.on_end()

    def data_received(self, data: bytes) -> None:
        self.forward(data)

    def on_end(self) -> None:
        if self.early is not None:
            self.early_end = True
            self.got_end = True
            return
        super().on_end()

    def finish(self) -> None:
        if not self.finished:
            self._report("closed")
        super().finish()

    def on_reset(self, code: str, message: str) -> None:
        if code == "closed":  # the relay's word for a visitor's socket that went away
            self._report("visitor_reset")
        else:
            self._report(f"reset: {code}")
        super().on_reset(code, message)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished:
            self._report("app_reset")
        super().connection_lost(exc)

    def forget(self) -> None:
        self.agent_link.streams.pop(self.sid, None)

    def _report(self, how: str) -> None:
        if self.reported:
            return
        self.reported = True
        record = ConnectionRecord(
            time=self.opened,
            client=self.client,
            stream=self.sid,
            duration_ms=(time.perf_counter() - self._started) * 1000,
            bytes_in=self.bytes_to_socket,
            bytes_out=self.bytes_from_socket,
            closed=how,
        )
        # After the link's flush: the report never delays the bytes.
        self.agent_link.after_flush(self.agent_link.agent.on_event, record)

    async def connect(self) -> None:
        s = self.agent_link.agent.settings
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: self, s.local_host, s.local_port)
        except OSError as exc:
            if not self.finished:
                why = exc.strerror or str(exc)
                self._report("connect_failed")
                self.reset(
                    "connect_failed", f"The local service at {s.local} did not answer ({why})."
                )
