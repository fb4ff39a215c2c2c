"""The service's end of the control channel: a Unix socket (mode 0600) for its user only.

Each client is checked with SO_PEERCRED: a process of another user is told why and closed even
if the socket's mode were loosened. Clients send requests (maps with an ``op``) and get one reply
per request, with the request's ``id``; those that subscribe get the feed too. A client that
breaks the framing is closed; the others carry on. A client too slow to read the feed loses
records (it is told how many; they are in the capture store); its statuses and events wait until
it has read its backlog down, as one message: the latest statuses (each is a whole snapshot) and
the events in order. What the service holds for a client that never reads is thus bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tui.service.paths import make_private_dir
from tui.service.protocol import Decoder, ProtocolError, encode

log = logging.getLogger("molehill.service")

FEED_BACKLOG = 8 * 1024 * 1024  # unread feed bytes a client may have before records are dropped
MAX_OWED_EVENTS = 1000  # events kept for a client that is behind (the oldest go first)
REPLY_BACKLOG = 1024 * 1024  # unread bytes past which a client's next request waits
_PEERCRED = struct.Struct("3i")  # pid, uid, gid


class Client:
    """One connected dashboard or command."""

    def __init__(self, writer: asyncio.StreamWriter, pid: int) -> None:
        self.writer = writer
        self.pid = pid
        self.subscribed = False
        self.dropped = 0  # records not sent since the last notice
        # Statuses and events held back while the client is behind: sent once it catches up.
        # Queuing each snapshot instead grew without bound for a client that never reads (a
        # suspended dashboard): a busy tunnel's statuses are ~12 KB, four times a second.
        self.owed: dict[str, Any] | None = None

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    @property
    def backlog(self) -> int:
        return self.writer.transport.get_write_buffer_size()


Handler = Callable[[Client, dict[str, Any]], Awaitable[dict[str, Any] | None]]


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """The connected peer's (pid, uid, gid), from the kernel."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, gid = _PEERCRED.unpack(raw)
    return pid, uid, gid


class ControlServer:
    """Listens on ``path``; ``handler`` answers each request (None: no reply)."""

    def __init__(self, path: Path, handler: Handler, allowed_uid: int | None = None) -> None:
        self.path = path
        self.handler = handler
        self.allowed_uid = os.getuid() if allowed_uid is None else allowed_uid
        self.clients: set[Client] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        make_private_dir(self.path.parent)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a dead service's socket (the pid lock says none runs)
        old = os.umask(0o177)  # no moment when the socket is open to others
        try:
            self._server = await asyncio.start_unix_server(self._serve, self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    def broadcast(self, parts: list[tuple[bytes, int]]) -> None:
        """Send feed parts (message, records in it) to subscribers. A client with more than
        FEED_BACKLOG unread bytes gets no records (it is later told how many it missed), and
        the statuses and events of the first part are kept for it (``Client.owed``) until it
        is below FEED_BACKLOG again. Called with no parts too, so what is owed goes out."""
        for client in list(self.clients):
            if not client.subscribed:
                continue
            if client.owed is not None and client.backlog <= FEED_BACKLOG:
                client.send(encode({"feed": client.owed}))  # before anything newer
                client.owed = None
            for index, (message, records) in enumerate(parts):
                if client.owed is not None or client.backlog > FEED_BACKLOG:
                    client.dropped += records
                    if index == 0:
                        _owe(client, message)
                    continue
                client.send(message)
            if client.dropped and client.owed is None and client.backlog <= FEED_BACKLOG:
                client.send(encode({"dropped": client.dropped}))
                client.dropped = 0

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for client in list(self.clients):
            client.writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._converse(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pid, uid, _ = peer_credentials(writer.get_extra_info("socket"))
        if uid != self.allowed_uid:
            log.warning("refused a control connection from pid %d of uid %d", pid, uid)
            writer.write(encode({"error": f"this service belongs to uid {self.allowed_uid}"}))
            await writer.drain()
            return
        client = Client(writer, pid)
        self.clients.add(client)
        decoder = Decoder()
        try:
            while data := await reader.read(65536):
                try:
                    requests = decoder.feed(data)
                except ProtocolError as exc:
                    log.warning("closed control client pid %d: %s", pid, exc)
                    writer.write(encode({"error": f"protocol error: {exc}"}))
                    await writer.drain()
                    return
                for request in requests:
                    reply = await self._answer(client, request)
                    if reply is not None:
                        client.send(encode(reply))
                    if client.backlog > REPLY_BACKLOG:
                        # Thousands of small requests fit in one read: a client that sends
                        # them without reading would have all their replies queued here.
                        await writer.drain()
                await writer.drain()
        finally:
            self.clients.discard(client)

    async def _answer(self, client: Client, request: dict[str, Any]) -> dict[str, Any] | None:
        try:
            reply = await self.handler(client, request)
        except Exception as exc:  # a bad request must not end the service
            log.exception("request %r failed", request.get("op"))
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if reply is not None:
            reply["id"] = request.get("id")
        return reply


def _owe(client: Client, message: bytes) -> None:
    """Keep a first feed part's statuses and events for ``client`` (rare: only while it is far
    behind). Statuses are whole snapshots: the latest replaces the one kept."""
    (decoded,) = Decoder().feed(message)
    feed = decoded["feed"]
    owed = client.owed or {"records": {}, "events": [], "statuses": {}}
    events = [*owed["events"], *feed["events"]]
    owed["events"] = events[-MAX_OWED_EVENTS:]
    if feed["statuses"]:
        owed["statuses"] = feed["statuses"]
    client.owed = owed
