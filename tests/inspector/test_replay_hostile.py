"""Replays against apps that misbehave (garbage, silence, a close mid-head, an endless body),
targets that are not URLs, and the in-memory originals' bounds."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import pytest

from inspector.message import ReplayRequest
from inspector.originals import OriginalRequest, Originals
from inspector.replay import ReplayError, send, split_url

REQUEST = ReplayRequest("GET", "/x", [("Host", "h")])


@asynccontextmanager
async def app(answer: bytes, close: bool = True, repeat: int = 1):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for _ in range(repeat):
            writer.write(answer)
            await writer.drain()
        if close:
            writer.close()
        else:
            await asyncio.sleep(30)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def test_garbage_and_cut_heads_are_reported():
    async with app(b"SSH-2.0-OpenSSH\r\n\r\n") as url:
        with pytest.raises(ReplayError, match=r"not valid HTTP/1\.1"):
            await send(REQUEST, url)
    async with app(b"HTTP/1.1 200 OK\r\nContent-") as url:
        with pytest.raises(ReplayError, match="without a whole response head"):
            await send(REQUEST, url)


async def test_silence_times_out():
    async with app(b"", close=False) as url:
        with pytest.raises(ReplayError, match=r"did not answer within 0\.3s"):
            await send(REQUEST, url, timeout=0.3)


async def test_a_large_body_is_read_whole_and_kept_up_to_the_cap():
    chunk = b"x" * 65536
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(chunk) * 20}\r\n\r\n".encode()
    async with app(head + chunk * 20) as url:
        _, record = await send(REQUEST, url, keep=100_000)
    assert record.status == 200 and record.bytes_out == len(head) + len(chunk) * 20
    assert record.capture is not None and record.capture.response_truncated
    assert len(record.capture.response_head) + len(record.capture.response_body) == 100_000


async def test_a_body_until_close_and_a_refused_port():
    async with app(b"HTTP/1.0 200 OK\r\n\r\nall of it") as url:
        _, record = await send(REQUEST, url)
    assert record.capture is not None and record.capture.response_body == b"all of it"
    with pytest.raises(ReplayError, match="cannot reach"):
        await send(REQUEST, "http://127.0.0.1:1")


def test_targets_that_are_not_urls():
    for bad in ("ftp://x", "http://", "http://h:99999"):
        with pytest.raises(ReplayError):
            split_url(bad)
    assert split_url("http://app.localhost:3000") == ("127.0.0.1", 3000, False)
    assert split_url("https://[::1]") == ("::1", 443, True)


def test_originals_are_bounded_by_count_and_bytes():
    kept = Originals(max_entries=3, max_bytes=100)
    for i in range(5):
        kept.put(i, OriginalRequest(b"h", b"b", False))
    assert len(kept) == 3 and kept.get(0) is None and kept.get(4) is not None
    kept.put(9, OriginalRequest(b"h" * 60, b"", False))
    kept.put(10, OriginalRequest(b"h" * 60, b"", False))
    assert kept.get(9) is None and kept.get(10) is not None
    kept.put(11, OriginalRequest(b"h" * 101, b"", False))  # larger than the whole map
    assert kept.get(11) is None and kept.get(10) is not None
