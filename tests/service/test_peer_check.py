"""Only the service's own user gets in: the socket's mode (0600, in a 0700 directory) and,
should the mode ever be loosened, the peer's uid from SO_PEERCRED. Another user is a real
process here (setuid to nobody; the test needs root to make one)."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import pytest

from tui.service.client import ServiceConnection
from tui.service.control import ControlServer
from tui.service.protocol import encode

NOBODY = 65534
# The other user's client: a Python it may run (the test's own may live under root's home).
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print("connect:", type(exc).__name__); sys.exit(0)
s.settimeout(10)
try:
    s.sendall(bytes.fromhex(sys.argv[2]))
except BrokenPipeError:
    pass  # refused and closed before the request went out
print("reply:", s.recv(4096))
"""


async def _echo(client, request):
    return {"ok": True, "op": request.get("op")}


async def _as_nobody(socket_path: Path) -> str:
    request = encode({"op": "status", "id": 1}).hex()

    def become_nobody() -> None:
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    proc = await asyncio.create_subprocess_exec(
        SYSTEM_PYTHON,
        "-c",
        CONNECT,
        str(socket_path),
        request,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=become_nobody,
        cwd="/",
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    return out.decode()


@pytest.fixture
def socket_dir():
    # Not under tmp_path: pytest's base directory is 0700, which would hide the socket from
    # the other user before its own mode is even looked at.
    folder = Path(tempfile.mkdtemp(prefix="molehill-peer-"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder)


async def test_own_user_gets_answers_and_the_socket_is_private(socket_dir):
    server = ControlServer(socket_dir / "run" / "s.sock", _echo)
    await server.start()
    try:
        assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(server.path.parent).st_mode) == 0o700
        conn = ServiceConnection(server.path)
        reply = await asyncio.to_thread(conn.request, "status")
        conn.close()
        assert reply == {"ok": True, "op": "status", "id": 1}
    finally:
        await server.close()
    assert not server.path.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="making a process of another user needs root")
async def test_another_user_is_kept_out_by_the_mode(socket_dir):
    server = ControlServer(socket_dir / "run" / "s.sock", _echo)
    await server.start()
    try:
        os.chmod(server.path.parent, 0o711)  # let nobody reach the socket itself
        assert (await _as_nobody(server.path)).strip() == "connect: PermissionError"
    finally:
        await server.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="making a process of another user needs root")
async def test_another_user_is_refused_by_peer_credentials_if_the_mode_is_loosened(socket_dir):
    served: list[str] = []

    async def handler(client, request):
        served.append(request["op"])
        return {"ok": True}

    server = ControlServer(socket_dir / "run" / "s.sock", handler)
    await server.start()
    try:
        os.chmod(server.path.parent, 0o711)
        os.chmod(server.path, 0o666)
        out = await _as_nobody(server.path)
        assert out.startswith("reply:")
        assert f"this service belongs to uid {os.getuid()}" in out
        assert served == []  # the request was never handled
        assert not server.clients
    finally:
        await server.close()


async def test_a_client_that_breaks_the_framing_is_closed_and_others_carry_on(socket_dir):
    server = ControlServer(socket_dir / "run" / "s.sock", _echo)
    await server.start()
    try:
        good = ServiceConnection(server.path)
        reader, writer = await asyncio.open_unix_connection(str(server.path))
        writer.write(b"\x00\x00\x00\x02\xc1\xc1")  # a frame of bytes that are not msgpack
        closing = await asyncio.wait_for(reader.read(), 5)  # the error, then end of stream
        assert b"protocol error" in closing
        writer.close()
        reply = await asyncio.to_thread(good.request, "status")
        assert reply["ok"] is True
        good.close()
    finally:
        await server.close()
