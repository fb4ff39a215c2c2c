"""``RemoteHost``: the dashboard's tunnels when a service holds them (TunnelHost's interface).

A reader thread takes the service's feed and merges it into one batch that ``drain()`` hands
over, as TunnelHost does: the dashboard's redraws never wait for the socket. Commands are sent
without waiting for their replies (TunnelHost's calls do not wait either).
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay.agent import AgentSettings
from relay.host import HostUpdate
from tui.service.client import ServiceConnection, ServiceGone
from tui.service.forms import FormError, pack, unpack, unpack_update
from tui.service.paths import service_paths
from tui.service.pidlock import read_running


@dataclass(frozen=True, slots=True)
class RemoteRelay:
    """The service's embedded relay, as the header bar shows it."""

    public: str  # its public URL for a tunnel named NAME
    agents_port: int

    def public_url(self, name: str) -> str:
        return self.public.replace("NAME", name)


class RemoteHost:
    """Connect with ``attach(socket_path)``; ``lost`` says why the service went away."""

    def __init__(self, conn: ServiceConnection, hello: dict[str, Any]) -> None:
        self.conn = conn
        self.pid = int(hello.get("pid", 0))
        self.log_path = str(hello.get("log", ""))
        self.api_url = str(hello.get("api", ""))
        relay = hello.get("relay") or {}
        self.relay_url = str(relay.get("url", ""))
        # The other URLs of a list in the profiles file (a service from before "urls": none).
        self.more_relays = tuple(str(url) for url in relay.get("urls", [])[1:])
        self.relay_note = str(relay.get("note", ""))
        self.token = "token" if relay.get("token") else ""  # only whether one is set is used
        embedded = relay.get("embedded")
        self.embedded = (
            RemoteRelay(str(embedded["public"]), int(embedded["agents_port"])) if embedded else None
        )
        # The dashboard only asks whether the relay was found running (not configured).
        self.found = True if relay.get("found") else None
        self.lost = ""  # why the connection ended, once it has
        self.dropped = 0  # feed records the service could not send us (we read too slowly)
        self.on_lost: Callable[[str], None] | None = None
        self._lock = threading.Lock()
        statuses = unpack(hello.get("statuses", {}))
        self._update = HostUpdate(statuses=dict(statuses) if isinstance(statuses, dict) else {})
        self._problems: list[str] = []  # requests the service turned down, and why
        self._notes: list[str] = []  # what the service did on our reload requests
        self._send_lock = threading.Lock()
        self._waiting: dict[int, Future[dict[str, Any]]] = {}  # request id -> its reply
        self._detached = False
        self._reader = threading.Thread(target=self._read, name="molehill-remote", daemon=True)

    @classmethod
    def attach(cls, socket_path: Path | str, timeout: float = 5.0) -> RemoteHost:
        """Connect and subscribe to the feed; raises OSError or ServiceGone."""
        conn = ServiceConnection(socket_path, timeout)
        try:
            hello = conn.request("hello", subscribe=True)
        except BaseException:
            conn.close()
            raise
        conn.sock.settimeout(None)  # the feed may be quiet for a long time
        host = cls(conn, hello)
        host._reader.start()
        return host

    @property
    def uses_embedded_relay(self) -> bool:
        return self.embedded is not None

    # -- TunnelHost's interface ----------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Already running: the service started it."""

    def start_tunnel(self, key: str, settings: AgentSettings) -> None:
        self._send("start", key=key, settings=pack(settings))

    def stop_tunnel(self, key: str) -> None:
        self._send("stop", key=key)

    def restart_tunnel(self, old_key: str, key: str, settings: AgentSettings) -> None:
        self._send("restart", old=old_key, key=key, settings=pack(settings))

    def drain(self) -> HostUpdate:
        with self._lock:
            update = self._update
            self._update = HostUpdate(statuses=update.statuses)
        return update

    def stop(self, timeout: float = 5.0) -> None:
        """Detach: the service and its tunnels run on."""
        self._detached = True
        with contextlib.suppress(OSError):
            self.conn.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader (close alone would not)
        self._reader.join(timeout)
        self.conn.close()

    # -- the service's own --------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Why the service turned requests down, since the last call."""
        with self._lock:
            problems, self._problems = self._problems, []
        return problems

    def reload(self) -> None:
        """Ask the service to re-read the profiles file (its outcome comes in ``notes()``)."""
        self._send("reload")

    def notes(self) -> list[str]:
        """What the service did on our reload requests, since the last call."""
        with self._lock:
            notes, self._notes = self._notes, []
        return notes

    def take_dropped(self) -> int:
        """Records the service could not send since the last call (we read too slowly)."""
        with self._lock:
            dropped, self.dropped = self.dropped, 0
        return dropped

    def shut_down_service(self) -> None:
        """Ask the service to stop its tunnels and exit."""
        self._send("shutdown")

    def replay(self, exchange_id: int, options: dict[str, Any]) -> Future[dict[str, Any]]:
        """Ask the service to replay a stored exchange (it holds the originals of what its
        tunnels captured, and stores the answer); the future gets the reply."""
        future: Future[dict[str, Any]] = Future()
        if self.lost:
            future.set_exception(ServiceGone(self.lost))
            return future
        try:
            # Registered before the reader can see the reply: it takes _lock to look.
            with self._send_lock, self._lock:
                request_id = self.conn.send("replay", exchange=exchange_id, options=options)
                self._waiting[request_id] = future
        except OSError as exc:
            self._lose(f"the service's socket failed: {exc}")
            future.set_exception(ServiceGone(self.lost))
        return future

    def _send(self, op: str, **fields: Any) -> None:
        if self.lost:
            return
        try:
            with self._send_lock:
                self.conn.send(op, **fields)
        except OSError as exc:
            self._lose(f"the service's socket failed: {exc}")

    def _read(self) -> None:
        try:
            while True:
                message = self.conn.receive()
                ident = message.get("id")
                with self._lock:
                    waiter = self._waiting.pop(ident, None) if type(ident) is int else None
                if waiter is not None:
                    waiter.set_result(message)
                elif "feed" in message:
                    self._merge(unpack_update(message["feed"]))
                elif "dropped" in message:
                    with self._lock:
                        self.dropped += int(message["dropped"])
                elif message.get("ok") and "unchanged" in message:  # a reload's outcome
                    with self._lock:
                        self._notes.append(_reload_note(message))
                elif not message.get("ok", True) and message.get("error"):
                    with self._lock:
                        self._problems.append(str(message["error"]))
        except (ServiceGone, OSError, FormError, ValueError) as exc:
            if not self._detached:
                self._lose(str(exc))

    def _merge(self, update: HostUpdate) -> None:
        with self._lock:
            pending = self._update
            for key, records in update.records.items():
                pending.records.setdefault(key, []).extend(records)
            pending.events.extend(update.events)
            if update.statuses:
                pending.statuses = update.statuses

    def _lose(self, why: str) -> None:
        if self.lost:
            return
        self.lost = why or "the service went away"
        with self._lock:
            waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            future.set_exception(ServiceGone(self.lost))
        with self._lock:  # its tunnels are gone with it: say so rather than show them online
            self._update.statuses = {
                key: dataclasses.replace(status, state="error", error="the service stopped")
                for key, status in self._update.statuses.items()
            }
        if self.on_lost is not None:
            self.on_lost(self.lost)


def _reload_note(outcome: dict[str, Any]) -> str:
    parts = [
        f"{what} {', '.join(outcome[what])}"
        for what in ("started", "restarted", "stopped")
        if outcome.get(what)
    ]
    if outcome.get("relay_changed"):
        parts.append("[relay] changed: `molehill service restart` applies it")
    return "profiles reloaded: " + ("; ".join(parts) or "no tunnel had to change")


def attach_if_running(profiles: Path) -> RemoteHost | None:
    """The running service of this profiles file, attached to; None if none runs (or it does
    not answer: the dashboard then runs its tunnels itself, as without a service)."""
    paths = service_paths(profiles)
    if read_running(paths) is None:
        return None
    try:
        return RemoteHost.attach(paths.socket)
    except (OSError, ServiceGone):
        return None
