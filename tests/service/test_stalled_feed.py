"""A subscribed client that never reads (a dashboard suspended with Ctrl+Z, a hung one) must not
make the service hold more and more of its feed: records were already dropped past the backlog,
but every statuses snapshot was queued for it, and a tunnel's statuses change every second for
ten minutes after any request (its per-second chart moves). A real ControlServer on a real
Unix socket, fed what the service feeds it (feed_messages of real snapshots)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from relay.events import Reconnecting, RequestRecord
from relay.host import HostUpdate, TunnelStatus
from relay.stats import TunnelStats
from tui.service.control import FEED_BACKLOG, MAX_OWED_EVENTS, ControlServer
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
