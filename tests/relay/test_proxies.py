"""deploy/Caddyfile and deploy/nginx.conf in front of a relay run with
deploy/relay-behind-proxy.toml, all on loopback: agents over wss:// through the proxy, visitors
over HTTPS to two tunnels on one keep-alive connection, SSE, WebSocket, /metrics kept private.

Skipped where Caddy or nginx is not installed (Debian: apt-get install caddy nginx-light)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from ipaddress import ip_network
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect

from relay.server import Relay
from relay.server.config import load_config
from tests.relay.helpers import agent_at, open_from
from tests.support.cli import ROOT, require_program
from tests.support.stack import agent_for, raw_request, read_response, running_relay

DEPLOY = ROOT / "deploy"
DOMAIN = "tunnels.localhost"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def resolve_localhost(monkeypatch):
    """NAME.tunnels.localhost -> 127.0.0.1 for the agent (not every resolver does it)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@dataclass
class Proxy:
    """A proxy on loopback in front of ``relay``: HTTPS on ``port``, trusting ``ca_file``."""

    relay: Relay
    port: int
    ca_file: str

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    @property
    def agents_url(self) -> str:
        return f"wss://{DOMAIN}:{self.port}"


def adapted_relay_config(tmp_path: Path) -> Path:
    text = (DEPLOY / "relay-behind-proxy.toml").read_text()
    text = text.replace("tunnels.example.com", DOMAIN)
    text = text.replace('"127.0.0.1:8080"', '"127.0.0.1:0"').replace(
        '"127.0.0.1:7000"', '"127.0.0.1:0"'
    )
    path = tmp_path / "relay.toml"
    path.write_text(text)
    return path


async def wait_for_tls(port: int, ca_file: Path | str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if not Path(ca_file).exists():
                raise FileNotFoundError(ca_file)
            context = ssl.create_default_context(cafile=str(ca_file))
            _, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=context, server_hostname=f"x.{DOMAIN}"
            )
            writer.close()
            return
        except (OSError, ssl.SSLError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def caddy(relay: Relay, tmp_path: Path) -> AsyncIterator[Proxy]:
    text = (DEPLOY / "Caddyfile").read_text()
    https_port, http_port = free_port(), free_port()
    text = text.replace(
        "\temail admin@example.com\n",
        f"\tadmin off\n\tlocal_certs\n\tskip_install_trust\n"
        f"\thttp_port {http_port}\n\thttps_port {https_port}\n",
    )
    text = text.replace("\t\tdns cloudflare {env.CLOUDFLARE_API_TOKEN}\n", "\t\tissuer internal\n")
    text = text.replace("tunnels.example.com", DOMAIN)
    text = text.replace("127.0.0.1:8080", f"127.0.0.1:{relay.http_port}")
    text = text.replace("127.0.0.1:7000", f"127.0.0.1:{relay.agents_port}")
    config = tmp_path / "Caddyfile"
    config.write_text(text)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "HOME": str(tmp_path)}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    proc = subprocess.Popen(
        ["caddy", "run", "--config", str(config), "--adapter", "caddyfile"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ca_file = tmp_path / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        await wait_for_tls(https_port, ca_file)
        yield Proxy(relay, https_port, str(ca_file))
    finally:
        proc.terminate()
        proc.wait(5)


@contextlib.asynccontextmanager
async def nginx(relay: Relay, tmp_path: Path) -> AsyncIterator[Proxy]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert(DOMAIN, f"*.{DOMAIN}")
    (tmp_path / "fullchain.pem").write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(tmp_path / "privkey.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    https_port, http_port = free_port(), free_port()
    text = (DEPLOY / "nginx.conf").read_text()
    text = text.replace("/etc/letsencrypt/live/tunnels.example.com", str(tmp_path))
    text = text.replace("tunnels.example.com", DOMAIN)
    text = text.replace("listen [::]:80;", f"listen [::1]:{http_port};")
    text = text.replace("listen [::]:443 ssl;", f"listen [::1]:{https_port} ssl;")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    text = text.replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    text = text.replace("127.0.0.1:8080", f"127.0.0.1:{relay.http_port}")
    text = text.replace("127.0.0.1:7000", f"127.0.0.1:{relay.agents_port}")
    (tmp_path / "molehill.conf").write_text(text)
    temp = tmp_path / "temp"
    temp.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(temp, 0o777)
    main = (
        f"daemon off;\nworker_processes 1;\npid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n"
        f"  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n"
        f"  fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n"
        f"  scgi_temp_path {temp}/scgi;\n  include {tmp_path}/molehill.conf;\n}}\n"
    )
    (tmp_path / "nginx.conf").write_text(main)
    check = subprocess.run(
        ["nginx", "-t", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(["nginx", "-c", str(tmp_path / "nginx.conf")])
    try:
        await wait_for_tls(https_port, tmp_path / "ca.pem")
        yield Proxy(relay, https_port, str(tmp_path / "ca.pem"))
    finally:
        proc.terminate()
        proc.wait(5)


PROXIES = {"caddy": caddy, "nginx": nginx}


@pytest.mark.parametrize("make_proxy", list(PROXIES.values()), ids=list(PROXIES))
async def test_relay_behind_the_shipped_proxy_config(
    make_proxy, tmp_path, app_port, resolve_localhost
):
    require_program(make_proxy.__name__)  # caddy or nginx: .ci/run installs both
    settings = load_config(adapted_relay_config(tmp_path))
    async with Relay(settings) as relay, make_proxy(relay, tmp_path) as proxy:
        ca = proxy.ca_file
        async with (
            agent_at(proxy.agents_url, app_port, "uno", ca_file=ca) as uno,
            agent_at(proxy.agents_url, app_port, "dos", ca_file=ca) as dos,
        ):
            assert uno.agent.url == f"https://uno.{DOMAIN}"  # public_scheme and public_port
            base = f"https://127.0.0.1:{proxy.port}"
            async with httpx.AsyncClient(verify=proxy.context(), base_url=base) as client:

                async def get(name: str, path: str, **kwargs) -> httpx.Response:
                    host = f"{name}.{DOMAIN}:{proxy.port}"
                    ext = {"sni_hostname": f"{name}.{DOMAIN}"}
                    return await client.get(path, headers={"Host": host}, extensions=ext, **kwargs)

                # Two tunnels, alternately, on the visitor's one keep-alive connection.
                for _ in range(3):
                    for tunnel in (uno, dos):
                        response = await get(tunnel.agent.name, "/echo")
                        assert response.status_code == 200, response.text
                        headers = dict((k.lower(), v) for k, v in response.json()["headers"])
                        assert headers["x-forwarded-for"] == "127.0.0.1, 127.0.0.1"
                        assert headers["x-forwarded-proto"] == "https"
                        assert headers["x-forwarded-host"].startswith(f"{tunnel.agent.name}.")

                # Server-sent events arrive as they are sent, not at the end.
                started = time.monotonic()
                async with client.stream(
                    "GET",
                    "/sse?n=3&interval=0.4",
                    headers={"Host": f"uno.{DOMAIN}:{proxy.port}"},
                    extensions={"sni_hostname": f"uno.{DOMAIN}"},
                ) as stream:
                    chunks = stream.aiter_text()
                    first = await anext(chunks)
                    assert "event 0" in first and time.monotonic() - started < 0.35
                    rest = "".join([chunk async for chunk in chunks])
                    assert "event 2" in rest

                # The agents' /metrics is not served through the proxy.
                metrics = await client.get(
                    "/metrics",
                    headers={"Host": f"{DOMAIN}:{proxy.port}"},
                    extensions={"sni_hostname": DOMAIN},
                )
                assert metrics.status_code == 404

            # A WebSocket through proxy, relay and agent.
            async with ws_connect(
                f"wss://uno.{DOMAIN}:{proxy.port}/ws",
                ssl=proxy.context(),
                host="127.0.0.1",
                port=proxy.port,
                server_hostname=f"uno.{DOMAIN}",
            ) as ws:
                await ws.send("hi")
                assert await ws.recv() == "echo: hi"
            assert uno.agent.state == dos.agent.state == "online"


async def test_a_trusted_proxy_may_send_requests_for_two_tunnels_on_one_connection(app_port):
    async with (
        running_relay(trusted_proxies=[ip_network("127.0.0.1/32")]) as relay,
        agent_for(relay, app_port, "uno") as uno,
        agent_for(relay, app_port, "dos") as dos,
    ):
        reader, writer = await open_from(relay.http_port)
        for tunnel in (uno, dos, uno):
            writer.write(
                raw_request(tunnel.host, "/echo", headers=[("X-Forwarded-For", "1.2.3.4")])
            )
            response = await read_response(reader)
            assert response.status == 200
            assert json.loads(response.body)["path"] == "/echo"
        writer.close()
