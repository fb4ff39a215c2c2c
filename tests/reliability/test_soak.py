"""Soak: a long run of requests of random methods, sizes and concurrency through one tunnel.

The relay (`molehill relay`), the agent (`molehill http --json`) and the local app run as
separate processes, so each one's memory is read on its own (VmRSS) and nothing shares the test's
event loop except the load generator itself.

Every request is checked: the app reports the sha256 of the request body it received (compared
with what was sent) and answers a slice of a seeded 2 MiB buffer (compared byte for byte with the
slice asked for). Zero mismatches and zero lost requests are allowed, the agent must log exactly
one record per request, and the relay's and agent's memory at the end must be within 10% of
their level after the warm-up.

Sizes are 0 to 1 MiB, drawn log-uniformly (plus exact 0 and 1 MiB edge cases), so small and
large bodies both occur often; methods are GET (no body), POST and PUT (a body); the run is cut
into segments of 1, 4, 16 or 64 concurrent keep-alive connections, and 5% of requests close
their connection afterwards so streams open and close all the time.

An earlier issue asked for 200,000 requests. On this 2-core VM the four processes carry about
850 of these requests a second (2,500 on the VM it was written on), so 200,000 took ~4 minutes,
a fifth of the suite's 20-minute budget: CI runs 30,000 (~35 s; the warm-up is the first 10%),
and ``MOLEHILL_SOAK_REQUESTS=200000`` runs the full soak (the timeout grows with the count).
``MOLEHILL_SOAK_SEED`` picks another random sequence; ``-s`` prints the figures.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from dataclasses import dataclass, field

import pytest

from tests.reliability.procs import agent_process, app_process, relay_process
from tests.support.apps import SOAK_SOURCE_SIZE, soak_source
from tests.support.stack import open_raw, read_response

REQUESTS = int(os.environ.get("MOLEHILL_SOAK_REQUESTS", "30000"))
MIB = 1024 * 1024
CONCURRENCY = (1, 4, 16, 64)
CLOSE_AFTER = 0.05  # chance that a request closes its connection afterwards
MEMORY_SLACK = 0.10

pytestmark = [pytest.mark.slow, pytest.mark.timeout(max(240, REQUESTS // 200))]


def body_size(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.02:
        return 0
    if roll < 0.04:
        return MIB
    return min(MIB, int(2 ** rng.uniform(0, 20)))


@dataclass(frozen=True, slots=True)
class Spec:
    method: str
    request_offset: int
    request_size: int
    response_offset: int
    response_size: int
    close: bool


def make_spec(rng: random.Random) -> Spec:
    method = rng.choice(("GET", "POST", "PUT"))
    request_size = 0 if method == "GET" else body_size(rng)
    response_size = body_size(rng)
    return Spec(
        method,
        rng.randrange(SOAK_SOURCE_SIZE - request_size + 1),
        request_size,
        rng.randrange(SOAK_SOURCE_SIZE - response_size + 1),
        response_size,
        rng.random() < CLOSE_AFTER,
    )


@dataclass
class Tally:
    done: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    connections: int = 0
    mismatches: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)


async def one_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, spec: Spec, tally: Tally
) -> None:
    source = soak_source()
    body = source[spec.request_offset : spec.request_offset + spec.request_size]
    head = f"{spec.method} /soak?offset={spec.response_offset}&size={spec.response_size} HTTP/1.1"
    lines = [head, f"Host: {host}"]
    if spec.method != "GET":
        lines.append(f"Content-Length: {len(body)}")
    if spec.close:
        lines.append("Connection: close")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await writer.drain()
    resp = await read_response(reader, timeout=60)
    expected = source[spec.response_offset : spec.response_offset + spec.response_size]
    sent = hashlib.sha256(body).hexdigest()
    problems = []
    if resp.status != 200:
        problems.append(f"status {resp.status}")
    if resp.header("X-Request-Sha256") != sent or resp.header("X-Request-Length") != str(len(body)):
        problems.append("request body arrived changed")
    if resp.body != expected:
        problems.append(f"response body differs ({len(resp.body)}/{len(expected)} bytes)")
    if problems:
        tally.mismatches.append(f"{spec}: {', '.join(problems)}")
    tally.done += 1
    tally.bytes_up += len(body)
    tally.bytes_down += len(resp.body)


async def run_segment(port: int, host: str, specs: list[Spec], workers: int, tally: Tally) -> None:
    """Carry ``specs`` over ``workers`` keep-alive connections, side by side."""
    todo = iter(specs)

    async def worker() -> None:
        reader = writer = None
        try:
            for spec in todo:
                if writer is None:
                    reader, writer = await open_raw(port)
                    tally.connections += 1
                assert reader is not None
                close = spec.close
                try:
                    await one_request(reader, writer, host, spec, tally)
                except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError) as exc:
                    tally.lost.append(f"{spec}: {exc!r}")
                    close = True
                if close:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    await asyncio.gather(*(worker() for _ in range(workers)))


async def run_specs(
    port: int, host: str, rng: random.Random, count: int, tally: Tally, warm_up: bool = False
) -> None:
    """``count`` requests in segments of random concurrency (every level once when warming up)."""
    left = count
    levels = list(CONCURRENCY)
    while left > 0:
        if warm_up and levels:
            workers = levels.pop()
            size = max(count // len(CONCURRENCY), 1)
        else:
            workers = rng.choice(CONCURRENCY)
            size = rng.randint(max(workers * 10, 200), max(workers * 10, 2000))
        size = min(size, left)
        await run_segment(port, host, [make_spec(rng) for _ in range(size)], workers, tally)
        left -= size


async def test_soak_random_requests_through_one_tunnel(tmp_path):
    rng = random.Random(int(os.environ.get("MOLEHILL_SOAK_SEED", "1")))
    warm_count = max(2000, REQUESTS // 10)
    main_count = max(REQUESTS - warm_count, 0)
    async with (
        app_process(tmp_path) as (_, app_port),
        relay_process(tmp_path) as relay,
        # The data path alone: captures (a writer thread storing every body) have their own
        # tests, and here would halve the rate and make the memory check about SQLite's cache.
        agent_process(
            tmp_path, relay.agents_url, app_port, "soak", extra=("--no-capture", "--no-api")
        ) as agent,
    ):
        host = relay.host("soak")
        tally = Tally()
        started = time.monotonic()
        await run_specs(relay.http_port, host, rng, warm_count, tally, warm_up=True)
        await asyncio.sleep(1.0)
        warm = {"relay": relay.rss_kib(), "agent": agent.rss_kib()}
        warm_done = time.monotonic()

        peak = dict(warm)

        async def sample() -> None:
            while True:
                await asyncio.sleep(0.5)
                peak["relay"] = max(peak["relay"], relay.rss_kib())
                peak["agent"] = max(peak["agent"], agent.rss_kib())

        sampler = asyncio.create_task(sample())
        try:
            await run_specs(relay.http_port, host, rng, main_count, tally)
        finally:
            sampler.cancel()
        elapsed = time.monotonic() - started
        await asyncio.sleep(1.0)
        end = {"relay": relay.rss_kib(), "agent": agent.rss_kib()}
        await agent.wait_for(
            lambda: agent.requests >= REQUESTS, timeout=15, what="the agent's request log"
        )
        total = tally.done + len(tally.lost)
        rate = total / elapsed
        print(
            f"\nsoak: {total} requests in {elapsed:.1f}s ({rate:.0f}/s; main phase "
            f"{main_count / max(time.monotonic() - warm_done - 1.0, 1e-3):.0f}/s), "
            f"{tally.connections} connections, {tally.bytes_up / MIB:.0f} MiB up, "
            f"{tally.bytes_down / MIB:.0f} MiB down; RSS KiB after warm-up {warm}, "
            f"peak {peak}, end {end}; agent logged {agent.requests}"
        )
        assert total == REQUESTS
        assert not tally.lost, f"{len(tally.lost)} lost, first: {tally.lost[:3]}"
        assert not tally.mismatches, (
            f"{len(tally.mismatches)} mismatches, first: {tally.mismatches[:3]}"
        )
        assert agent.requests == REQUESTS
        for who in ("relay", "agent"):
            assert end[who] <= warm[who] * (1 + MEMORY_SLACK), (
                f"{who} grew from {warm[who]} KiB after warm-up to {end[who]} KiB"
            )
        assert "Traceback" not in relay.stderr() + agent.stderr()
