"""deploy/haproxy-cluster.cfg and deploy/relay-cluster-node.toml rendered for loopback ports,
and HAProxy run in the foreground for one test."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.cluster.redis_proc import free_port
from tests.support.cli import ROOT, require_program

DEPLOY = ROOT / "deploy"
# HAProxy connects to the nodes from this address, so that the visitors of a test (on
# 127.0.0.1) are not themselves trusted proxies: the relay must tell them apart.
PROXY_SOURCE = "127.0.0.2"


def node_config(tmp_path: Path, public_port: int) -> Path:
    """The nodes' config file: tunnels at NAME.localhost:PUBLIC_PORT behind the HAProxy."""
    text = (DEPLOY / "relay-cluster-node.toml").read_text()
    text = text.replace('"tunnels.example.com"', '"localhost"')
    text = text.replace("public_port = 80 ", f"public_port = {public_port} ")
    text = text.replace('["127.0.0.1/32"]', f'["{PROXY_SOURCE}/32"]')
    path = tmp_path / "relay-cluster-node.toml"
    path.write_text(text)
    return path


def haproxy_config(
    tmp_path: Path, visitors: int, agents: int, nodes: list[tuple[int, int]]
) -> Path:
    """The shipped config with its listeners on ``visitors``/``agents`` and node N (1-based) at
    ``nodes[N-1]`` = (public HTTP port, agents' port)."""
    text = (DEPLOY / "haproxy-cluster.cfg").read_text()
    text = text.replace("    bind :80\n", f"    bind 127.0.0.1:{visitors}\n")
    text = text.replace("    bind :7000\n", f"    bind 127.0.0.1:{agents}\n")
    text = text.replace("defaults\n", f"defaults\n    source {PROXY_SOURCE}\n", 1)
    for index, (http, agent) in enumerate(nodes, start=1):
        text = text.replace(
            f"127.0.0.1:808{index} check port 700{index}", f"127.0.0.1:{http} check port {agent}"
        )
        text = text.replace(f"127.0.0.1:700{index} check", f"127.0.0.1:{agent} check")
    settings = "\n".join(line.split("#")[0] for line in text.splitlines())
    assert not re.search(r":80[0-9]{0,2}\b|:700[0-9]\b", settings), text  # all replaced
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    return path


@asynccontextmanager
async def haproxy(
    tmp_path: Path, nodes: list[tuple[int, int]], visitors: int = 0
) -> AsyncIterator[tuple[int, int]]:
    """HAProxy in front of ``nodes``; yields its (visitors' port, agents' port)."""
    binary = require_program("haproxy")  # CI=true: fails, not skips, without it
    assert binary is not None
    visitors, agents = visitors or free_port(), free_port()
    config = haproxy_config(tmp_path, visitors, agents, nodes)
    checked = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    log = open(tmp_path / "haproxy.log", "wb")  # noqa: SIM115 (the process keeps it)
    proc = await asyncio.create_subprocess_exec(
        binary, "-db", "-f", str(config), stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    try:
        for _ in range(500):
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", agents)
                writer.close()
                break
            except OSError:
                assert proc.returncode is None, (tmp_path / "haproxy.log").read_text()
                await asyncio.sleep(0.02)
        yield visitors, agents
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
