"""A client that never reads must cost the service a bounded amount.

A subscribed one (a dashboard suspended with Ctrl+Z, a hung one) must not make the service hold
more and more of its feed: records were already dropped past the backlog, but every statuses
snapshot was queued for it, and a tunnel's statuses change every second for ten minutes after
any request (its per-second chart moves). And one that sends requests without reading their
replies: thousands fit in one read, and each reply was queued before the service waited for the
client at all. A real ControlServer on a real Unix socket, fed what the service feeds it
(feed_messages of real snapshots)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from relay.events import Reconnecting, RequestRecord
from relay.host import HostUpdate, TunnelStatus
from relay.stats import TunnelStats
from tui.service.control import FEED_BACKLOG, MAX_OWED_EVENTS, REPLY_BACKLOG, ControlServer
from tui.service.feed import feed_messages
from tui.service.forms import unpack_update
from tui.service.protocol import Decoder, encode

pytestmark = pytest.mark.timeout(120)

ROUNDS = 3000  # 12.5 minutes of publishing (four a second)


@pytest.fixture
def socket_dir():
    folder = Path(tempfile.mkdtemp(prefix="molehill-feed-"))
    yield folder
    shutil.rmtree(folder)


async def _subscribe(client, request):
    client.subscribed = True
    return {"ok": True}


def _status(stats: TunnelStats, n: int) -> TunnelStatus:
    record = RequestRecord(
        time=1_000_000.0 + n,
        method="GET",
        path=f"/{n}",
        status=200,
        duration_ms=5.0 + n % 7,
        bytes_in=100,
        bytes_out=200,
        client="203.0.113.9:4000",
        stream=n + 1,
    )
    stats.add(record, now=1_000_000.0 + n)
    return TunnelStatus(
        key="web",
        state="online",
        name="web",
        url="http://web.localhost",
        local="localhost:3000",
        error="",
        rtt_ms=1.0,
        open_streams=0,
        stats=stats.snapshot(now=1_000_000.0 + n),
    )


async def test_a_client_that_never_reads_costs_at_most_its_backlog_and_gets_the_latest_statuses(
    socket_dir,
):
    server = ControlServer(socket_dir / "run" / "s.sock", _subscribe)
    await server.start()
    stalled = socket.socket(socket.AF_UNIX)
    try:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(str(server.path))
        stalled.sendall(encode({"op": "hello", "id": 1}))
        async with asyncio.timeout(5):
            while not any(c.subscribed for c in server.clients):
                await asyncio.sleep(0.01)
        (client,) = server.clients

        stats = TunnelStats()
        sent_events = 0
        largest = 0
        part_size = 0
        for n in range(ROUNDS):
            events = []
            if n % 10 == 0:  # an event now and then: they must all arrive, in order
                events = [("web", Reconnecting("web", f"lost {sent_events}", 1, 0.5))]
                sent_events += 1
            update = HostUpdate({}, events, {"web": _status(stats, n)})
            parts = feed_messages(update, 64 * 1024)
            part_size = max(part_size, len(parts[0][0]))
            server.broadcast(parts)
            largest = max(largest, client.backlog)
            if n % 100 == 0:
                await asyncio.sleep(0)  # the loop writes what the socket takes
        assert sent_events < MAX_OWED_EVENTS
        # One snapshot is some KiB: thousands queued would be far past the backlog.
        assert largest <= FEED_BACKLOG + 4 * part_size, (largest, part_size)

        # It reads again (the service publishes on, with nothing new): the events in order,
        # and the statuses it ends with are the last ones.
        reading = asyncio.ensure_future(asyncio.to_thread(_read_all, stalled))
        while not reading.done():
            server.broadcast([])
            await asyncio.sleep(0.05)
        got = reading.result()
        events_seen = [e.reason for u in got for _, e in u.events]
        assert events_seen == [f"lost {i}" for i in range(sent_events)]
        last = [u.statuses for u in got if u.statuses][-1]
        assert last["web"].stats.total_requests == ROUNDS
    finally:
        stalled.close()
        await server.close()


def _read_all(stalled: socket.socket) -> list[HostUpdate]:
    """Every feed message the client gets until the service has nothing more for it."""
    decoder = Decoder()
    updates: list[HostUpdate] = []
    stalled.settimeout(2.0)
    while True:
        try:
            data = stalled.recv(1 << 20)
        except TimeoutError:
            return updates
        assert data, "the service closed the stalled client"
        for message in decoder.feed(data):
            if "feed" in message:
                updates.append(unpack_update(message["feed"]))


async def test_a_client_that_asks_without_reading_waits_for_its_replies(socket_dir):
    """Status replies of a service with many tunnels are some KiB; 4,000 requests of 20 bytes
    arrive in one read. The service stops reading the client's requests while its replies
    are unread, as a socket would."""
    answered = 0

    async def big_status(client, request):
        nonlocal answered
        answered += 1
        return {"ok": True, "tunnels": [{"name": f"t{i}", "url": "x" * 80} for i in range(100)]}

    server = ControlServer(socket_dir / "run" / "s.sock", big_status)
    await server.start()
    asker = socket.socket(socket.AF_UNIX)
    try:
        asker.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        asker.connect(str(server.path))
        requests = b"".join(encode({"op": "status", "id": n}) for n in range(4000))
        asker.setblocking(False)
        sent = 0
        largest = 0
        for _ in range(100):  # two seconds of the service's time, the client never reading
            with contextlib.suppress(BlockingIOError):
                sent += asker.send(requests[sent:])
            await asyncio.sleep(0.02)
            largest = max([largest, *(c.backlog for c in server.clients)])
        reply_size = len(encode(await big_status(None, {})))
        assert answered < 4000
        assert largest <= REPLY_BACKLOG + 2 * reply_size, (largest, answered)

        got = await asyncio.to_thread(_count_replies, asker, requests[sent:])
        assert got == 4000  # every request is answered once the client reads
    finally:
        asker.close()
        await server.close()


def _count_replies(asker: socket.socket, rest: bytes) -> int:
    asker.setblocking(True)
    asker.settimeout(10)
    # The rest of the requests go from another thread: the service reads them only as fast as
    # this one reads the replies.
    sender = threading.Thread(target=asker.sendall, args=(rest,), daemon=True)
    sender.start()
    decoder = Decoder()
    got = 0
    while got < 4000:
        data = asker.recv(1 << 20)
        assert data, "the service closed the client"
        got += len(decoder.feed(data))
    sender.join(10)
    return got
