"""`molehill http TARGET` with every target form, end to end through a real relay, including a
local app that serves HTTPS with a certificate made for the test."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from tests.support.apps import make_app
from tests.support.cli import molehill_process, run_molehill
from tests.support.stack import running_relay

trustme = pytest.importorskip("trustme")


@dataclass
class TlsApp:
    port: int
    ca_file: Path
    server_names: list[str | None] = field(default_factory=list)  # SNI of each handshake


@asynccontextmanager
async def tls_app(folder: Path) -> AsyncIterator[TlsApp]:
    """The test app over HTTPS on 127.0.0.1, with a certificate for localhost from a new CA."""
    ca = trustme.CA()
    ca_file = folder / "local-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    app = TlsApp(0, ca_file)
    context.sni_callback = lambda _sock, name, _ctx: app.server_names.append(name)
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    app.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield app
    finally:
        await runner.cleanup()


def headers_of(echo: dict) -> dict[str, str]:
    return {k.lower(): v for k, v in echo["headers"]}


@pytest.mark.parametrize(
    "form", ["{port}", "localhost:{port}", "127.0.0.1:{port}", "http://localhost:{port}"]
)
async def test_each_plain_target_form_carries_a_request(app_port, form):
    target = form.format(port=app_port)
    async with (
        running_relay() as relay,
        molehill_process(
            "http", target, "--relay", relay.agents_url, "--subdomain", "form", "--json"
        ) as agent,
    ):
        opened = json.loads(await agent.line())
        assert opened["event"] == "tunnel_open"
        assert opened["local"].endswith(f":{app_port}")
        public = f"form.localhost:{relay.http_port}"
        async with httpx.AsyncClient(base_url=relay.http_url, headers={"Host": public}) as c:
            resp = await c.get("/echo/x")
        assert resp.status_code == 200, resp.text
        assert resp.json()["path"] == "/echo/x"
        assert await agent.terminate() == 0


async def test_https_target_is_verified_and_an_untrusted_certificate_fails_clearly(tmp_path):
    async with (
        tls_app(tmp_path) as app,
        running_relay() as relay,
        molehill_process(
            "http",
            f"https://localhost:{app.port}",
            "--relay",
            relay.agents_url,
            "--subdomain",
            "tls",
        ) as agent,
    ):
        first = await agent.line()
        assert f"-> https://localhost:{app.port}" in first, first
        public = f"tls.localhost:{relay.http_port}"
        async with httpx.AsyncClient(base_url=relay.http_url, headers={"Host": public}) as c:
            resp = await c.get("/echo/secret")
        assert resp.status_code == 502
        assert "certificate is not trusted" in resp.text, resp.text
        assert "--local-insecure" in resp.text
        line = await agent.line()
        assert "/echo/secret" in line and "502" in line
        assert app.server_names == ["localhost"]  # it did try TLS, with SNI = the host given
        assert await agent.terminate() == 0


async def test_https_target_with_a_trusted_certificate_sends_sni_and_the_public_host(tmp_path):
    async with tls_app(tmp_path) as app, running_relay() as relay:
        env = {"SSL_CERT_FILE": str(app.ca_file)}  # the system trust store, as a user's CA
        async with molehill_process(
            "http",
            f"https://localhost:{app.port}",
            "--relay",
            relay.agents_url,
            "--subdomain",
            "trusted",
            "--json",
            env=env,
        ) as agent:
            opened = json.loads(await agent.line())
            assert opened["event"] == "tunnel_open"
            public = f"trusted.localhost:{relay.http_port}"
            async with httpx.AsyncClient(base_url=relay.http_url, headers={"Host": public}) as c:
                resp = await c.get("/echo/ok")
            assert resp.status_code == 200, resp.text
            # The app sees the visitor's Host (the public name), as with a plain target.
            assert headers_of(resp.json())["host"] == public
            assert app.server_names == ["localhost"]
            assert await agent.terminate() == 0


async def test_local_insecure_accepts_a_self_signed_certificate(tmp_path):
    async with (
        tls_app(tmp_path) as app,
        running_relay() as relay,
        molehill_process(
            "http",
            f"https://127.0.0.1:{app.port}",
            "--local-insecure",
            "--relay",
            relay.agents_url,
            "--subdomain",
            "insecure",
            "--json",
        ) as agent,
    ):
        json.loads(await agent.line())
        public = f"insecure.localhost:{relay.http_port}"
        async with httpx.AsyncClient(base_url=relay.http_url, headers={"Host": public}) as c:
            for _ in range(3):  # several connections: each one's handshake is accepted
                resp = await c.get("/echo/a", headers={"Connection": "close"})
                assert resp.status_code == 200, resp.text
        assert len(app.server_names) == 3
        assert await agent.terminate() == 0


async def test_start_runs_a_profile_with_an_https_target(tmp_path):
    async with tls_app(tmp_path) as app, running_relay() as relay:
        profiles = tmp_path / "profiles.toml"
        profiles.write_text(
            f'[relay]\nurl = "{relay.agents_url}"\n\n'
            f'[profiles.secure]\ntarget = "https://localhost:{app.port}"\nlocal_insecure = true\n'
        )
        async with molehill_process("--profiles", str(profiles), "start", "--all", "--json") as run:
            opened = json.loads(await run.line())
            assert opened["event"] == "tunnel_open" and opened["profile"] == "secure"
            public = f"secure.localhost:{relay.http_port}"
            async with httpx.AsyncClient(base_url=relay.http_url, headers={"Host": public}) as c:
                resp = await c.get("/echo/p")
            assert resp.status_code == 200, resp.text
            assert await run.terminate() == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["foo:bar"], "'foo:bar' is not a target: use PORT, HOST:PORT, http://HOST:PORT or"),
        (["ftp://localhost:21"], "not ftp://"),
        (["http://localhost:3000/app"], "no path"),
        (["70000"], "1-65535"),
        (["localhost:3000", "--local-insecure"], "--local-insecure is for an https:// target"),
        (["localhost:3000", "--host", "::1"], "--host goes with a bare PORT"),
        (["3000", "--connect-timeout", "soon"], "is not a number of seconds"),
    ],
)
async def test_wrong_targets_exit_2_saying_what_is_accepted(args, words):
    done = await run_molehill("http", *args)
    assert done.code == 2, done
    assert words in done.err, done.err
    assert "Traceback" not in done.err
