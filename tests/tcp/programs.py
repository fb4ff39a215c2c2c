"""Real servers for TCP tunnel tests: PostgreSQL and OpenSSH on loopback, in a temp dir.

Both run as an ordinary user: PostgreSQL refuses to run as root, so under root (CI) it runs as
``nobody`` through ``runuser``.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from tests.support.cli import require_program

# Debian puts the server programs outside PATH, one directory per major version.
PG_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_port(port: int, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return


def _pg_program(name: str) -> str:
    for directory in reversed(PG_BINS):
        if (directory / name).exists():
            return str(directory / name)
    found = require_program(name)
    assert found is not None
    return found


@contextlib.contextmanager
def shared_tempdir() -> Iterator[Path]:
    """A temp dir another user may work in (pytest's own are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="molehill-tcp-", dir="/tmp"))
    os.chmod(path, 0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.asynccontextmanager
async def postgres() -> AsyncIterator[int]:
    """A PostgreSQL server on 127.0.0.1 (trust auth, user postgres); yields its port."""
    require_program("psql")
    initdb, server = _pg_program("initdb"), _pg_program("postgres")
    as_user: list[str] = []
    with shared_tempdir() as tmp:
        data = tmp / "data"
        data.mkdir()
        if os.geteuid() == 0:
            require_program("runuser")
            nobody = pwd.getpwnam("nobody")
            os.chown(data, nobody.pw_uid, nobody.pw_gid)
            os.chown(tmp, nobody.pw_uid, nobody.pw_gid)
            as_user = ["runuser", "-u", "nobody", "--"]
        subprocess.run(
            [*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True,
            capture_output=True,
            cwd=tmp,
        )
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            *as_user,
            server,
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(tmp),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            cwd=tmp,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await wait_for_port(port)
            yield port
        finally:
            proc.terminate()
            await proc.wait()


@contextlib.asynccontextmanager
async def sshd(tmp: Path) -> AsyncIterator[tuple[int, Path, str]]:
    """An OpenSSH server on 127.0.0.1 with its own host key, key auth only.

    Yields its port, the client's private key and the user to log in as.
    """
    sshd_path = require_program("sshd") or ""
    keygen = require_program("ssh-keygen") or ""
    for name in ("host_key", "client_key"):
        subprocess.run(
            [keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / name)],
            check=True,
            capture_output=True,
        )
    (tmp / "authorized_keys").write_text((tmp / "client_key.pub").read_text())
    os.chmod(tmp / "authorized_keys", 0o600)
    port = free_port()
    config = tmp / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp / 'host_key'}\n"
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}\nPidFile {tmp / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation dir
    proc = await asyncio.create_subprocess_exec(
        sshd_path,
        "-D",
        "-e",
        "-f",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_for_port(port)
        yield port, tmp / "client_key", getpass.getuser()
    finally:
        proc.terminate()
        await proc.wait()


def ssh_options(key: Path, tmp: Path) -> list[str]:
    return [
        "-i",
        str(key),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        f"UserKnownHostsFile={tmp / 'known_hosts'}",
        "-o",
        "LogLevel=ERROR",
    ]
