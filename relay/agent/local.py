"""A stream's connection to the local app or service: the dial, and the bytes that come first."""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

from relay.transport.bridge import StreamBridge

if TYPE_CHECKING:
    from relay.agent.client import AgentLink


class LocalDial(StreamBridge):
    """The agent's side of one stream; DATA may arrive before the local socket accepts.

    Subclasses say what a failed dial means (``dial_failed``) and may watch the accept
    (``connected``) and speak TLS (``tls``). HTTP and TCP tunnels differ only there.
    """

    def __init__(self, link: AgentLink, sid: int) -> None:
        super().__init__(link, link.wire.streams[sid])
        self.agent_link = link
        self.early: list[bytes] | None = []  # DATA that arrived while connecting
        # Grant no credit until the local socket accepts: early bytes stay within one window.
        self.writing_paused = True
        self.early_end = False

    def write(self, data: bytes) -> None:
        if self.early is not None:
            self.early.append(data)
        else:
            super().write(data)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.connected()
        self.block_reading(self.agent_link.blocked)
        early, self.early = self.early or [], None
        for chunk in early:
            transport.write(chunk)  # type: ignore[attr-defined]
        self.resume_writing()
        if self.early_end:
            self.on_end()

    def on_end(self) -> None:
        if self.early is not None:
            self.early_end = True
            self.got_end = True
            return
        super().on_end()

    def forget(self) -> None:
        self.agent_link.streams.pop(self.sid, None)

    async def connect(self) -> None:
        s = self.agent_link.agent.settings
        context = self.tls()
        try:
            async with asyncio.timeout(s.connect_timeout):
                await asyncio.get_running_loop().create_connection(
                    lambda: self,
                    s.local_host,
                    s.local_port,
                    ssl=context,
                    server_hostname=s.local_host if context is not None else None,
                )
        except OSError as exc:  # TimeoutError and ssl.SSLError (an untrusted certificate) included
            if not self.finished:
                self.dial_failed(exc, s.connect_timeout)

    def tls(self) -> ssl.SSLContext | None:
        """The TLS settings for the dial; None: plain TCP."""
        return None

    def connected(self) -> None:
        """The local socket accepted (before the early bytes are written to it)."""

    def dial_failed(self, exc: OSError, timeout: float) -> None:
        raise NotImplementedError
