"""The agent's own output never stalls it: an unread stdout drops lines, a closed one ends it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Iterator

from tests.support.apps import raw_server
from tests.support.cli import molehill_process, require_program
from tests.support.stack import open_raw, raw_request, read_response, running_relay
from tui.output import LineWriter

REQUESTS = 5000
CONNECTIONS = 8
# Long paths make each request line about 1 KB, so 5,000 of them are several times what the
# pipe, the agent's buffer and the test's own read-ahead can hold: lines must be dropped.
PAD = "x" * 900


class PipeReader:
    """The read end of an os.pipe(), read only when the test asks (never ahead of it)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self.buf = b""
        self.eof = False

    async def line(self, timeout: float = 10.0) -> str:
        async with asyncio.timeout(timeout):
            while b"\n" not in self.buf:
                if not await self._fill():
                    raise EOFError("pipe closed")
        raw, self.buf = self.buf.split(b"\n", 1)
        return raw.decode()

    async def _fill(self) -> bool:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                await asyncio.sleep(0.005)
                continue
            if not data:
                self.eof = True
                return False
            self.buf += data
            return True


@contextlib.contextmanager
def pipe() -> Iterator[tuple[int, int]]:
    read_fd, write_fd = os.pipe()
    try:
        yield read_fd, write_fd
    finally:
        for fd in (read_fd, write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


async def visitor(port: int, host: str, paths: list[str]) -> list[int]:
    """One keep-alive connection that asks for ``paths`` in turn; the statuses it got."""
    reader, writer = await open_raw(port)
    statuses = []
    try:
        for path in paths:
            writer.write(raw_request(host, path))
            statuses.append((await read_response(reader)).status)
    finally:
        writer.close()
    return statuses


async def test_an_unread_stdout_drops_lines_but_never_stalls_the_tunnel():
    # A short heartbeat: an agent stalled on its stdout would be declared dead within seconds
    # (and one that is merely slow on a busy machine would not).
    async with (
        raw_server() as app,
        running_relay(ping_interval=1.0, ping_timeout=5.0) as relay,
    ):
        with pipe() as (read_fd, write_fd):
            async with molehill_process(
                "http",
                str(app.port),
                "--relay",
                relay.agents_url,
                "--subdomain",
                "unread",
                "--json",
                stdout=write_fd,
            ) as agent:
                os.close(write_fd)
                out = PipeReader(read_fd)
                opened = json.loads(await out.line())
                assert opened["event"] == "tunnel_open"
                session = relay.tunnels["unread"]
                host = f"unread.localhost:{relay.http_port}"

                # The test stops reading here.
                paths = [f"/r{i}?{PAD}" for i in range(REQUESTS)]
                started = time.monotonic()
                async with asyncio.timeout(60):
                    results = await asyncio.gather(
                        *(
                            visitor(relay.http_port, host, paths[i::CONNECTIONS])
                            for i in range(CONNECTIONS)
                        )
                    )
                took = time.monotonic() - started
                statuses = [status for statuses in results for status in statuses]
                assert len(statuses) == REQUESTS
                assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
                # a few heartbeat periods with nobody reading: still the same, live session
                await asyncio.sleep(2.5)
                assert relay.tunnels.get("unread") is session
                assert agent.proc.returncode is None
                assert await visitor(relay.http_port, host, ["/after"]) == [200]

                # The reader comes back: everything is either delivered or counted as dropped.
                delivered = 0
                dropped = 0
                async with asyncio.timeout(20):
                    while delivered + dropped < REQUESTS + 1:
                        event = json.loads(await out.line())
                        if event["event"] == "request":
                            delivered += 1
                        elif event["event"] == "output_dropped":
                            dropped += event["lines"]
                assert dropped > 0
                assert delivered > 0
                assert delivered + dropped == REQUESTS + 1
                assert await agent.terminate() == 0
                stderr = await agent.rest_of_stderr()
                assert "Traceback" not in stderr, stderr
                print(f"{REQUESTS} requests in {took:.1f}s; {delivered} lines, {dropped} dropped")


async def test_a_closed_stdout_ends_the_agent_cleanly_like_yes_into_head():
    head = require_program("head")
    async with raw_server() as app, running_relay() as relay:
        with pipe() as (read_fd, write_fd):
            reader = await asyncio.create_subprocess_exec(
                head, "-5", stdin=read_fd, stdout=asyncio.subprocess.PIPE
            )
            os.close(read_fd)
            async with molehill_process(
                "http",
                str(app.port),
                "--relay",
                relay.agents_url,
                "--subdomain",
                "headed",
                stdout=write_fd,
            ) as agent:
                os.close(write_fd)
                host = f"headed.localhost:{relay.http_port}"
                # Requests one at a time until the agent has gone: head takes the URL line and
                # four request lines, then exits; the next line written finds the pipe closed.
                async with asyncio.timeout(20):
                    sent = 0
                    while agent.proc.returncode is None:
                        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                            await visitor(relay.http_port, host, [f"/n{sent}"])
                        sent += 1
                        await asyncio.sleep(0.02)
                    assert sent >= 4
                code = await agent.wait()
                stderr = await agent.rest_of_stderr()
            shown, _ = await reader.communicate()
    lines = shown.decode().splitlines()
    assert len(lines) == 5
    assert "tunnel 'headed' online" in lines[0]
    assert code == 0
    assert "Traceback" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr
    assert "stdout was closed" in stderr, stderr


def test_the_writer_never_blocks_counts_drops_and_reports_them_once_drained():
    with pipe() as (read_fd, write_fd):
        writer = LineWriter(write_fd, as_json=True, limit=64 * 1024)
        line = "y" * 99 + "\n"
        started = time.monotonic()
        for _ in range(20_000):  # 2 MB into a pipe nobody reads
            writer.write(line)
        assert time.monotonic() - started < 2.0
        assert writer.dropped > 0
        assert writer.pending <= 64 * 1024

        os.set_blocking(read_fd, False)
        received = bytearray()
        deadline = time.monotonic() + 5
        while b"output_dropped" not in received and time.monotonic() < deadline:
            with contextlib.suppress(BlockingIOError):
                received += os.read(read_fd, 65536)
            writer.flush()  # without a loop, the writer retries when asked to
        lines = received.decode().splitlines()
        delivered = len(lines) - 1
        assert json.loads(lines[-1]) == {"event": "output_dropped", "lines": 20_000 - delivered}
        assert all(text == line[:-1] for text in lines[:-1])
        assert writer.dropped == 0


async def test_the_writer_in_a_loop_resumes_by_itself_and_speaks_human():
    with pipe() as (read_fd, write_fd):
        writer = LineWriter(write_fd, as_json=False, limit=16 * 1024)
        for i in range(50_000):  # about 600 KB: the pipe takes 64 KiB, the writer 16 KiB
            writer.write(f"line {i}\n")
        assert writer.dropped > 0
        out = PipeReader(read_fd)
        got = []
        async with asyncio.timeout(5):
            while not got or "dropped" not in got[-1]:
                got.append(await out.line())
        count = int(got[-1].split()[1])
        assert got[-1] == f"molehill: {count} output lines dropped: stdout was not being read"
        assert got[:-1] == [f"line {i}" for i in range(len(got) - 1)]
        assert len(got) - 1 + count == 50_000
        writer.write("after\n")
        assert await out.line() == "after"
        writer.close()


def test_the_writer_turns_itself_off_when_the_reader_has_gone():
    gone: list[OSError] = []
    with pipe() as (read_fd, write_fd):
        writer = LineWriter(write_fd, as_json=True, on_closed=gone.append)
        os.close(read_fd)
        writer.write("first\n")
        writer.write("second\n")
    assert len(gone) == 1 and isinstance(gone[0], BrokenPipeError)
    assert writer.closed
