"""A blocking connection to a service's control socket, for the CLI and the dashboard."""

from __future__ import annotations

import itertools
import socket
from collections import deque
from pathlib import Path
from typing import Any

from tui.service.protocol import Decoder, ProtocolError, encode


class ServiceGone(ConnectionError):
    """The service closed the connection (it stopped, or it was killed)."""


class ServiceConnection:
    """Requests and their replies; other messages (the feed) are kept for ``receive``."""

    def __init__(self, path: Path | str, timeout: float | None = 5.0) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(self.path)
        except OSError:
            self.sock.close()
            raise
        self._decoder = Decoder()
        self._ids = itertools.count(1)
        self._pending: deque[dict[str, Any]] = deque()

    def send(self, op: str, **fields: Any) -> int:
        """Send a request without waiting; its id."""
        request_id = next(self._ids)
        self.sock.sendall(encode({"op": op, "id": request_id, **fields}))
        return request_id

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a request and wait for its reply (a refusal of the peer check raises)."""
        request_id = self.send(op, **fields)
        while True:
            message = self.receive()
            if message.get("id") == request_id:
                return message
            if "error" in message and "id" not in message:
                raise ServiceGone(message["error"])
            self._pending.append(message)

    def receive(self) -> dict[str, Any]:
        """The next message; raises ServiceGone at end of stream."""
        while not self._pending:
            data = self.sock.recv(65536)
            if not data:
                raise ServiceGone("the service closed the connection")
            try:
                self._pending.extend(self._decoder.feed(data))
            except ProtocolError as exc:
                raise ServiceGone(f"the service sent bad data: {exc}") from None
        return self._pending.popleft()

    def close(self) -> None:
        self.sock.close()
