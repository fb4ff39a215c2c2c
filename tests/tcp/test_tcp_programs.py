"""Real clients through `molehill relay --tcp-ports` and `molehill tcp`: psql, ssh and scp."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator

from tests.support.cli import molehill_process, require_program
from tests.tcp.programs import postgres, shared_tempdir, ssh_options, sshd
from tests.tcp.support import port_block

BULK_MB = 100  # each way, as the issue asks


@contextlib.asynccontextmanager
async def molehill_tcp(local_port: int) -> AsyncIterator[tuple[int, object]]:
    """`molehill relay --tcp-ports ...` and `molehill tcp PORT --json`; yields the public port
    (from the tcp:// address the agent printed) and the agent's process."""
    ports = port_block()
    async with molehill_process(
        "relay", "--http", "127.0.0.1:0", "--agents", "127.0.0.1:0", "--tcp-ports", str(ports)
    ) as relay:
        agents = (await relay.line_matching(r"agents\s+(ws://\S+)")).group(1)
        async with molehill_process("tcp", str(local_port), "--relay", agents, "--json") as agent:
            opened = json.loads(await agent.line())
            assert opened["event"] == "tunnel_open", opened
            assert opened["url"].startswith("tcp://localhost:")
            port = int(opened["url"].rsplit(":", 1)[1])
            assert port in ports
            yield port, agent


async def run(*argv: str, timeout: float = 60.0, **kwargs) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, **kwargs
    )
    async with asyncio.timeout(timeout):
        out, err = await proc.communicate()
    assert proc.returncode == 0, f"{argv[0]} failed: {err.decode()[-2000:]}"
    return out.decode()


async def test_psql_queries_and_copies_megabytes_each_way_through_molehill_tcp():
    psql = require_program("psql") or ""
    async with postgres() as pg_port, molehill_tcp(pg_port) as (port, agent):
        base = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(port)]
        base += ["-U", "postgres", "-d", "postgres"]
        answer = await run(*base, "-At", "-c", "select 6 * 7, version()")
        assert answer.startswith("42|PostgreSQL ")
        with shared_tempdir() as tmp:
            rows = BULK_MB * 1024 * 1024 // 129
            source = tmp / "in.txt"
            with source.open("w") as out:
                for i in range(rows):
                    out.write(f"{i}\t{hashlib.sha256(str(i).encode()).hexdigest() * 2}\n")
            back = tmp / "out.txt"
            started = time.monotonic()
            await run(
                *base,
                "-c",
                "create table bulk (n int, data text)",
                "-c",
                f"\\copy bulk from '{source}'",
                "-c",
                f"\\copy (select * from bulk order by n) to '{back}'",
            )
            elapsed = time.monotonic() - started
            assert source.stat().st_size >= BULK_MB * 1024 * 1024 * 0.99
            assert (
                hashlib.sha256(back.read_bytes()).digest()
                == hashlib.sha256(source.read_bytes()).digest()
            )
            count = await run(*base, "-At", "-c", "select count(*), sum(length(data)) from bulk")
            assert count.strip() == f"{rows}|{rows * 128}"
        print(f"psql COPY {BULK_MB} MB each way through the tunnel: {elapsed:.1f}s")
        agent.signal(2)
        assert await agent.wait() == 0
        records = [
            json.loads(line) for line in (await agent.proc.stdout.read()).decode().splitlines()
        ]
        connections = [r for r in records if r["event"] == "connection"]
        assert len(connections) >= 3  # one per psql run
        assert max(r["bytes_in"] for r in connections) > BULK_MB * 1024 * 1024


async def test_ssh_runs_a_command_and_scp_moves_a_file_intact():
    ssh = require_program("ssh") or ""
    scp = require_program("scp") or ""
    with shared_tempdir() as tmp:
        async with sshd(tmp) as (ssh_port, key, user), molehill_tcp(ssh_port) as (port, _):
            options = ssh_options(key, tmp)
            out = await run(
                ssh, *options, "-p", str(port), f"{user}@127.0.0.1", "echo hello $((6*7))"
            )
            assert out.strip() == "hello 42"
            payload = tmp / "payload.bin"
            payload.write_bytes(os.urandom(BULK_MB * 1024 * 1024))
            copy = tmp / "copy.bin"
            await run(scp, *options, "-P", str(port), str(payload), f"{user}@127.0.0.1:{copy}")
            back = tmp / "back.bin"
            await run(scp, *options, "-P", str(port), f"{user}@127.0.0.1:{copy}", str(back))
            digest = hashlib.sha256(payload.read_bytes()).digest()
            assert hashlib.sha256(copy.read_bytes()).digest() == digest
            assert hashlib.sha256(back.read_bytes()).digest() == digest
