"""The agent's end of one TCP tunnel connection: bytes to the local service, no HTTP observer.

A TCP tunnel carries any protocol (PostgreSQL, SSH...), so nothing here parses a byte: each
connection is piped both ways with the stream's flow control and half-close, and reported as
one :class:`ConnectionRecord` when it closes (who, how long, bytes each way, how it ended).
The agent's :class:`TcpLedger` lists the open connections and the latest closed ones.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

from relay.agent.failures import dial_failure
from relay.agent.local import LocalDial
from relay.agent.relay_text import printable
from relay.events import ConnectionRecord

if TYPE_CHECKING:
    from relay.agent.client import AgentLink

RECENT_CLOSED = 200  # closed connections kept for listings: memory stays bounded
RATE_WINDOW = 5.0  # seconds: live throughput is averaged over about this long


class TcpLedger:
    """A TCP tunnel's open connections, its latest closed ones and its live throughput.

    Read from other threads too (the dashboard's): readers copy before they iterate.
    """

    def __init__(self, keep: int = RECENT_CLOSED) -> None:
        self.open: dict[int, TcpConnection] = {}  # by number: stream ids restart per link
        self.closed: deque[ConnectionRecord] = deque(maxlen=keep)
        self.total = 0  # connections ever opened
        self.closed_in = 0  # bytes of connections no longer open
        self.closed_out = 0
        self._samples: deque[tuple[float, int, int]] = deque()  # (monotonic, in, out)

    def opened(self, conn: TcpConnection) -> int:
        self.total += 1
        self.open[self.total] = conn
        return self.total

    def ended(self, number: int, record: ConnectionRecord) -> None:
        if self.open.pop(number, None) is not None:
            self.closed_in += record.bytes_in
            self.closed_out += record.bytes_out
            self.closed.append(record)

    def bytes_moved(self) -> tuple[int, int]:
        """Bytes visitor -> app and app -> visitor, closed connections and open ones."""
        live = list(self.open.values())
        return (
            self.closed_in + sum(c.bytes_to_socket for c in live),
            self.closed_out + sum(c.bytes_from_socket for c in live),
        )

    def throughput(self, now: float | None = None) -> tuple[float, float]:
        """Bytes per second each way (in, out) over the last RATE_WINDOW seconds or so.

        Sampled when asked: a reader that asks every second or so gets a rolling figure.
        """
        now = time.monotonic() if now is None else now
        moved_in, moved_out = self.bytes_moved()
        samples = self._samples
        samples.append((now, moved_in, moved_out))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW:
            samples.popleft()  # keep one sample at least RATE_WINDOW old, as the base
        if len(samples) > 64:  # asked very often: thin the middle, keep the ends
            del samples[1]
        then, base_in, base_out = samples[0]
        span = now - then
        if span <= 0:
            return 0.0, 0.0
        return (moved_in - base_in) / span, (moved_out - base_out) / span

    def listing(self) -> list[ConnectionRecord]:
        """Open connections (newest first), then the closed ones kept (newest first)."""
        live = [c.record("", "open") for c in reversed(list(self.open.values()))]
        return live + list(reversed(list(self.closed)))


class TcpConnection(LocalDial):
    """One stream's connection to the local service, reported when it ends."""

    def __init__(self, link: AgentLink, sid: int, client: str) -> None:
        super().__init__(link, sid)
        self.client = client
        self.opened = time.time()
        self._started = time.perf_counter()
        self.reported = False
        self.number = link.agent.tcp.opened(self)

    def data_received(self, data: bytes) -> None:
        self.forward(data)

    def finish(self) -> None:
        if not self.finished:
            self._report("closed")
        super().finish()

    def on_reset(self, code: str, message: str) -> None:
        if code == "closed":  # the relay's word for a visitor's socket that went away
            self._report("visitor_reset")
        else:
            self._report(f"reset: {printable(code, 64)}")  # the relay's word: shown later
        super().on_reset(code, message)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished:
            self._report("app_reset")
        super().connection_lost(exc)

    def _report(self, how: str) -> None:
        if self.reported:
            return
        self.reported = True
        record = self.record(how)
        self.agent_link.agent.tcp.ended(self.number, record)
        # After the link's flush: the report never delays the bytes.
        self.agent_link.after_flush(self.agent_link.agent.on_event, record)

    def record(self, how: str, state: str = "closed") -> ConnectionRecord:
        """What is known of this connection now: closed ``how``, or still open."""
        return ConnectionRecord(
            time=self.opened,
            client=self.client,
            stream=self.sid,
            duration_ms=(time.perf_counter() - self._started) * 1000,
            bytes_in=self.bytes_to_socket,
            bytes_out=self.bytes_from_socket,
            closed=how,
            state=state,
        )

    def dial_failed(self, exc: OSError, timeout: float) -> None:
        _, why = dial_failure(exc, self.agent_link.agent.settings.local, timeout)
        self._report("connect_failed")
        self.reset("connect_failed", f"The {why}.")
