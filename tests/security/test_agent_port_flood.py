"""Flooding the relay's agents' port with no token and no HELLO, while a tunnel serves visitors.

The attacker's measurements on the earlier relay: each websocket message (up to 16 MiB) was
unpacked whole before any HELLO or token check, so

* one message holding a msgpack array header of 16M elements took the relay from 34 to
  1,204 MiB and stalled every tunnel for 3.4 s;
* a million PINGs in one message stalled it 3.3 s;
* 2.5 MiB/s of PING messages without a HELLO kept other tunnels unanswered for up to 6.2 s.

Here the relay (`molehill relay`), an agent (`molehill http PORT --subdomain probe`) and the
local app are separate processes, so the relay's memory is its own VmRSS (sampled every 10 ms).
The floods come from threads on blocking sockets, with hand-made masked websocket frames built
before the measurement starts, so the test's event loop stays free to time the probe: a GET
through the tunnel on the relay's public port every 20 ms. For each flood shape:

* the relay's RSS stays within RSS_GROWTH of its idle level;
* every probe request succeeds; 99% of them within PROBE_LIMIT (the issue's target: "a probe
  request on another tunnel stays under 50 ms"; see there why not the maximum), every one
  within STALL_LIMIT;
* the relay closes every flooding connection itself (a websocket close frame, EOF or reset),
  and does so soon: none is left open.

The four floods share one relay, agent and app (about 3 s to start); each measures from the
relay's idle level just before it. The whole file takes about 20 s.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import select
import socket
import statistics
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from websockets.frames import apply_mask

from relay.wire import codec as p
from tests.reliability.procs import RelayProcess, agent_process, app_process, relay_process
from tests.support.stack import open_raw, raw_request, read_response

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60), pytest.mark.asyncio(loop_scope="module")]

MIB = 1024 * 1024
RSS_GROWTH = 32 * MIB  # the relay's peak RSS during a flood, over its idle level
# The target: "a probe request on another tunnel stays under 50 ms". Asserted on the
# 99th percentile of the probes during a flood, not on the slowest one, because of the machine:
# on the shared 2-core CI machine (load average 6-7 while the other suites run) the slowest
# probe of a 3 s flood varied from 13 to 93 ms between identical runs while the relay spent
# under a fifth of a core on the flood and the 99th percentile stayed under 40 ms: the
# scheduling of five busy processes on two cores, not the relay. The slowest probe must stay
# within STALL_LIMIT, an order of magnitude below the stalls of the earlier relay (3.3-6.2 s).
PROBE_LIMIT = 0.050
STALL_LIMIT = 0.5
PROBE_EVERY = 0.020
SAMPLE_EVERY = 0.010
CLOSE_WITHIN = 5.0  # seconds the relay may take to close a flooding connection
PING = b"\x93\x09\x00\x01"  # [PING, 0, 1]
HELLO_BODY = b"hello from the local app"


# -- a hand-driven websocket client on a blocking socket -------------------------------------


def ws_frame(payload: bytes, opcode: int = 0x2, mask: bytes = b"\x37\xfa\x21\x3d") -> bytes:
    """One unfragmented, masked client frame (RFC 6455 5.2)."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 0x10000:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return head + mask + apply_mask(payload, mask)


class Refused(Exception):
    """The relay closed the connection (what the floods want to see)."""


class RawWebSocket:
    """A websocket to the agents' port that sends prepared frames and reads what comes back."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = self.sock.recv(4096)
            assert chunk, f"the relay closed during the handshake: {received!r}"
            received += chunk
        head, self.received = received.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101 "), head
        self.sent = 0
        self.ended = ""  # how the relay ended the connection, once it has

    def send(self, data: bytes) -> None:
        """Send ``data``; raises Refused if the relay has closed the connection."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise Refused(type(exc).__name__) from None
        self.sent += len(data)

    def _read(self, timeout: float) -> None:
        """Read what the relay sent within ``timeout``; note a close frame, EOF or reset."""
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return
        except ConnectionResetError:
            self.ended = self.ended or "reset"
            return
        if not chunk:
            self.ended = self.ended or "eof"
            return
        self.received += chunk
        code, self.received = _close_code(self.received)
        if code is not None:
            self.ended = self.ended or f"close {code}"

    def closed_by_relay(self) -> bool:
        """Whether the relay has closed the connection (or sent a close frame), by now."""
        while not self.ended and select.select([self.sock], [], [], 0)[0]:
            self._read(0.5)  # readable: recv returns at once
        return bool(self.ended)

    def outcome(self, timeout: float = CLOSE_WITHIN) -> str:
        """How the relay ended the connection: "close CODE", "eof" or "reset"; or "open" if it
        did not within ``timeout`` seconds (it answers pings, say)."""
        deadline = time.monotonic() + timeout
        while not self.ended and (left := deadline - time.monotonic()) > 0:
            self._read(left)
        return self.ended or "open"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _close_code(data: bytes) -> tuple[int | None, bytes]:
    """Skim the server's (unmasked) frames in ``data``: the code of a close frame among them,
    if any, and the bytes of the frame not yet complete."""
    at = 0
    while True:
        start = at
        if at + 2 > len(data):
            return None, data[start:]
        opcode, size = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if size == 126:
            size, at = int.from_bytes(data[at : at + 2], "big"), at + 2
        elif size == 127:
            size, at = int.from_bytes(data[at : at + 8], "big"), at + 8
        if at + size > len(data):
            return None, data[start:]
        if opcode == 0x8:
            return (int.from_bytes(data[at : at + 2], "big") if size >= 2 else 1005), b""
        at += size


# -- floods: each runs in a thread and returns what every connection saw ---------------------


@dataclass
class FloodReport:
    connections: int = 0
    sent: int = 0
    outcomes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # what went wrong in a flooding thread
    started: float = 0.0
    ended: float = 0.0


def flood(
    port: int,
    frame: bytes,
    *,
    connections: int,
    seconds: float,
    rate: float | None = None,
    pause: float = 0.0,
) -> FloodReport:
    """``connections`` threads flood for ``seconds``, each on one connection at a time: it sends
    ``frame`` (prepared bytes: masking 16 MiB here would hold the GIL and delay the probe) once,
    or, with ``rate``, again and again at ``rate / connections`` bytes a second until the relay
    closes the connection. Then it waits for the relay's close, and opens a new connection
    after ``pause``, as an attacker would. A connection the relay has not closed CLOSE_WITHIN
    seconds after the flood ends counts as "open"."""
    report = FloodReport(started=time.monotonic())
    deadline = report.started + seconds
    lock = threading.Lock()
    interval = len(frame) * connections / rate if rate else 0.0

    def one() -> None:
        while time.monotonic() < deadline:
            ws = RawWebSocket(port)
            try:
                next_at = time.monotonic()
                while not ws.closed_by_relay():
                    try:
                        ws.send(frame)
                    except Refused:
                        break
                    if not rate or time.monotonic() > deadline + CLOSE_WITHIN:
                        break
                    next_at += interval
                    time.sleep(max(0.0, next_at - time.monotonic()))
                outcome = ws.outcome()
            finally:
                ws.close()
            with lock:
                report.connections += 1
                report.sent += ws.sent
                report.outcomes.append(outcome)
            time.sleep(pause)

    def guarded() -> None:
        try:
            one()
        except Exception as exc:
            with lock:
                report.errors.append(repr(exc))

    threads = [threading.Thread(target=guarded) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report.ended = time.monotonic()
    return report


# -- the stack, the probe and the RSS sampler ------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def relay(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RelayProcess]:
    """The relay, the local app and an agent with tunnel ``probe``, each a process."""
    log_dir = tmp_path_factory.mktemp("flood")
    async with (
        relay_process(log_dir) as relay,
        app_process(log_dir) as (_, app_port),
        agent_process(log_dir, relay.agents_url, app_port, "probe"),
    ):
        yield relay


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Probe:
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def worst(self) -> float:
        return max(self.latencies, default=0.0)

    @property
    def p99(self) -> float:
        if len(self.latencies) < 2:
            return self.worst
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[98]

    def summary(self) -> str:
        return (
            f"{len(self.latencies)} probes, max {self.worst * 1000:.1f} ms, "
            f"p99 {self.p99 * 1000:.1f} ms, median "
            f"{statistics.median(self.latencies or [0]) * 1000:.1f} ms, "
            f"failures {self.failures[:3]}"
        )


async def probe(relay: RelayProcess, stop: asyncio.Event, result: Probe) -> None:
    """A GET through tunnel ``probe`` every PROBE_EVERY s, on a keep-alive connection."""
    connection = None
    while not stop.is_set():
        started = time.perf_counter()
        try:
            if connection is None:
                connection = await open_raw(relay.http_port)
            reader, writer = connection
            writer.write(raw_request(relay.host("probe"), "/"))
            response = await read_response(reader, timeout=5)
            assert response.status == 200 and response.body == HELLO_BODY, response.head
        except (OSError, TimeoutError, AssertionError, asyncio.IncompleteReadError) as exc:
            result.failures.append(repr(exc))
            if connection is not None:
                connection[1].close()
            connection = None
            await asyncio.sleep(PROBE_EVERY)
            continue
        elapsed = time.perf_counter() - started
        result.latencies.append(elapsed)
        await asyncio.sleep(max(0.0, PROBE_EVERY - elapsed))
    if connection is not None:
        connection[1].close()


async def sample_rss(relay: RelayProcess, stop: asyncio.Event, peak: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], relay.rss_kib() * 1024)
        await asyncio.sleep(SAMPLE_EVERY)


async def idle_rss(relay: RelayProcess) -> int:
    """The relay's resident memory at rest (the median of a few samples), in bytes."""
    samples = []
    for _ in range(10):
        samples.append(relay.rss_kib() * 1024)
        await asyncio.sleep(SAMPLE_EVERY)
    return int(statistics.median(samples))


@dataclass
class Measured:
    flood: FloodReport
    probe: Probe
    baseline: int
    peak: int
    cpu: float  # seconds of CPU the relay used while flooded
    stderr: str

    @property
    def growth(self) -> int:
        return self.peak - self.baseline

    def summary(self) -> str:
        outcomes = sorted(set(self.flood.outcomes))
        return (
            f"relay RSS {self.baseline / MIB:.1f} -> peak {self.peak / MIB:.1f} MiB "
            f"(+{self.growth / MIB:.1f}); {self.probe.summary()}; flood: "
            f"{self.flood.connections} connections, {self.flood.sent / MIB:.1f} MiB sent in "
            f"{self.flood.ended - self.flood.started:.1f} s, outcomes {outcomes}, "
            f"errors {self.flood.errors[:3]}; "
            f"relay CPU {self.cpu:.2f} s"
        )


async def measure(relay: RelayProcess, flood: Callable[[], FloodReport]) -> Measured:
    """Warm the tunnel up, take the idle RSS, then run ``flood`` in a thread while probing."""
    warm = Probe()
    stop = asyncio.Event()
    warming = asyncio.create_task(probe(relay, stop, warm))
    await asyncio.sleep(0.5)
    stop.set()
    await warming
    assert warm.latencies and not warm.failures, warm.summary()
    baseline = await idle_rss(relay)
    stop = asyncio.Event()
    result = Probe()
    peak = [baseline]
    tasks = [
        asyncio.create_task(probe(relay, stop, result)),
        asyncio.create_task(sample_rss(relay, stop, peak)),
    ]
    try:
        await asyncio.sleep(0.2)  # the probe's own rhythm first
        cpu = cpu_seconds(relay.pid)
        report = await asyncio.to_thread(flood)
        cpu = cpu_seconds(relay.pid) - cpu
        await asyncio.sleep(0.3)  # and the aftermath
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    measured = Measured(report, result, baseline, peak[0], cpu, relay.stderr())
    print(measured.summary())
    return measured


def check(measured: Measured) -> None:
    summary = measured.summary()
    assert not measured.flood.errors, summary
    assert measured.flood.connections, summary
    refused = [o for o in measured.flood.outcomes if o != "open"]
    assert len(refused) == len(measured.flood.outcomes), f"flood sockets left open: {summary}"
    assert not measured.probe.failures, summary
    assert len(measured.probe.latencies) >= 10, summary
    assert measured.growth < RSS_GROWTH, summary
    assert measured.probe.p99 < PROBE_LIMIT, summary
    assert measured.probe.worst < STALL_LIMIT, summary
    assert "Traceback" not in measured.stderr, measured.stderr[-3000:]


# -- the floods ----------------------------------------------------------------------------


async def test_array_header_bomb(relay):
    """(a) one message: an array header claiming 16M elements, then 16 MiB of one-byte
    elements (what the attacker sent), from 4 connections at a time for 2 s, each coming back
    50 ms after the relay closed it."""
    bomb = b"\xdd" + (16 * 2**20).to_bytes(4, "big")
    frame = ws_frame(bomb + b"\x90" * (p.MAX_MESSAGE - len(bomb)))
    measured = await measure(
        relay, lambda: flood(relay.agents_port, frame, connections=4, seconds=2.0, pause=0.05)
    )
    check(measured)


async def test_a_million_pings_in_one_message(relay):
    """(b) one message of 1,000,000 PING frames (4 MB), from 4 connections at a time for 2 s,
    each coming back 50 ms after the relay closed it."""
    frame = ws_frame(p.array_header(1_000_000) + PING * 1_000_000)
    measured = await measure(
        relay, lambda: flood(relay.agents_port, frame, connections=4, seconds=2.0, pause=0.05)
    )
    check(measured)


async def test_sustained_ping_messages_without_hello(relay):
    """(c) 2.5 MiB/s of PING messages (1,000 PINGs each) for 3 s from 4 connections, none of
    which says HELLO; a connection the relay closes comes back 50 ms later."""
    frame = ws_frame(p.array_header(1000) + PING * 1000)
    measured = await measure(
        relay,
        lambda: flood(
            relay.agents_port, frame, connections=4, seconds=3.0, rate=2.5 * MIB, pause=0.05
        ),
    )
    check(measured)


async def test_sustained_websocket_pings_without_hello(relay):
    """(c, websocket level) the same rate of websocket PING control frames (125 bytes each,
    sent 64 at a time), which websockets answers by itself: the session counts them too."""
    frame = ws_frame(b"x" * 125, opcode=0x9) * 64
    measured = await measure(
        relay,
        lambda: flood(
            relay.agents_port, frame, connections=4, seconds=3.0, rate=2.5 * MIB, pause=0.05
        ),
    )
    check(measured)
