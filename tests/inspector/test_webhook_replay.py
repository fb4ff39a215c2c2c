"""A Stripe webhook the app refused, found by filter and replayed with a fresh signature: by the
CLI (stored copy, --webhook-secret), by the running process's API (its in-memory original, even
when the store redacted the body), through the relay, after an $EDITOR edit; https apps too."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import time
from contextlib import asynccontextmanager

import httpx
import pytest
import stripe
from aiohttp import web

from inspector.message import ReplayRequest
from inspector.replay import send
from tests.support.cli import ROOT, molehill_env, molehill_process
from tests.support.stack import running_relay

SECRET = "whsec_replay_test_secret"


async def verify(request: web.Request) -> web.Response:
    """The app's own check, with Stripe's library (5 minutes' tolerance)."""
    body = await request.read()
    try:
        stripe.Webhook.construct_event(body, request.headers.get("Stripe-Signature", ""), SECRET)
    except (stripe.SignatureVerificationError, ValueError) as exc:
        return web.json_response({"ok": False, "why": str(exc)}, status=400)
    return web.json_response({"ok": True, "path": request.path_qs})


@asynccontextmanager
async def webhook_app(ssl_context=None):
    app = web.Application()
    app.router.add_post("/{tail:.*}", verify)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


def stale_signature(body: bytes) -> str:
    stamp = int(time.time()) - 3600
    digest = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


async def cli(store, *args: str, env: dict | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli", "requests", *args, cwd=ROOT,
        env=molehill_env({"MOLEHILL_CAPTURE_FILE": str(store), **(env or {})}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_a_refused_webhook_is_replayed_with_a_fresh_signature(tmp_path):
    store = tmp_path / "captures.sqlite3"
    plain = json.dumps({"id": "evt_1", "type": "invoice.paid"}).encode()
    secretive = json.dumps({"id": "evt_2", "token": "tok_live_abcdef123"}).encode()
    env = {"MOLEHILL_CAPTURE_FILE": str(store), "HOOK_SECRET": SECRET}
    async with (
        webhook_app() as app_port,
        running_relay() as relay,
        molehill_process(
            "http", str(app_port), "--relay", relay.agents_url, "--subdomain", "pay", "--json",
            "--api", "127.0.0.1:0", "--webhook-secret", "stripe=env:HOOK_SECRET", env=env,
        ) as agent,
    ):  # fmt: skip
        api = (await agent.json_err_until(lambda e: e.get("event") == "api"))["url"]
        assert json.loads(await agent.line())["event"] == "tunnel_open"
        host = f"pay.localhost:{relay.http_port}"
        async with httpx.AsyncClient(base_url=relay.http_url, headers={"Host": host}) as c:
            for body in (plain, secretive):
                sent = await c.post(
                    "/hooks/stripe",
                    content=body,
                    headers={"Stripe-Signature": stale_signature(body)},
                )
                assert sent.status_code == 400  # stale: the app refused it
        for _ in range(2):
            json.loads(await agent.line())
        found: list[dict] = []
        for _ in range(40):  # the writer stores off the data path
            code, out, err = await cli(store, "list", "--json", "--", "header:stripe-signature")
            found = [json.loads(line) for line in out.splitlines()]
            if len(found) == 2:
                break
        assert code == 0 and len(found) == 2, err
        secretive_id, plain_id = (str(f["id"]) for f in found)

        # The CLI sends the stored copy: stale without a secret, fresh with one.
        code, out, err = await cli(store, "replay", plain_id, "--json")
        outcome = json.loads(out)
        assert outcome["status"] == 400 and "--webhook-secret stripe" in outcome["notes"][0]
        code, out, err = await cli(
            store, "replay", plain_id, "--json", "--webhook-secret", "stripe=env:HOOK_SECRET",
            env={"HOOK_SECRET": SECRET},
        )  # fmt: skip
        assert code == 0 and json.loads(out)["status"] == 200, err
        assert "warning" not in err  # env: keeps the secret out of ps
        # Through the relay (the agent captures it too).
        code, out, err = await cli(
            store, "replay", plain_id, "--via-relay", "--json", "--webhook-secret",
            f"stripe={SECRET}",
        )  # fmt: skip
        assert code == 0 and json.loads(out)["status"] == 200, err
        # A secret in the arguments is readable by any user of the machine: said, not refused.
        assert "warning: the stripe webhook secret on the command line" in err
        assert "--webhook-secret stripe=env:VAR_NAME" in err and SECRET not in err
        assert json.loads(out)["url"] == f"http://{host}"
        json.loads(await agent.line())

        # The store redacted the token in the second body: the CLI cannot sign it...
        code, out, err = await cli(
            store, "replay", secretive_id, "--webhook-secret", f"stripe={SECRET}"
        )
        assert code == 1 and "[redacted]" in err and "local API" in err
        # ...the running process can: it holds the original in memory.
        async with httpx.AsyncClient(base_url=api) as c:
            answer = (await c.post(f"/api/requests/http/{secretive_id}/replay")).json()
        assert answer["status_code"] == 200 and answer["sent_original"] is True, answer
        assert any("re-signed the stripe webhook" in n for n in answer["notes"])

        # An $EDITOR edit is signed afresh too; a bad edit names its line and sends nothing.
        editor = tmp_path / "editor.py"
        editor.write_text(
            "import sys, pathlib\np = pathlib.Path(sys.argv[1])\n"
            "p.write_text(p.read_text().replace('/hooks/stripe', '/hooks/edited', 1))\n"
        )
        code, out, err = await cli(
            store, "replay", plain_id, "--edit", "--json", "--webhook-secret", f"stripe={SECRET}",
            env={"EDITOR": f"{sys.executable} {editor}"},
        )  # fmt: skip
        assert code == 0 and json.loads(out)["status"] == 200, err
        bad = tmp_path / "bad.py"
        bad.write_text(
            "import sys, pathlib\npathlib.Path(sys.argv[1]).write_text('POST /x HTTP/1.1\\n"
            "Host: h\\nnot a header\\n\\n')\n"
        )
        code, out, err = await cli(
            store, "replay", plain_id, "--edit", env={"EDITOR": f"{sys.executable} {bad}"}
        )
        assert code == 1 and "line 3" in err and "nothing was sent" in err, err
        assert await agent.terminate() == 0


async def test_replay_to_an_https_app(tmp_path):
    trustme = pytest.importorskip("trustme")
    import ssl

    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    body = b'{"id": "evt_tls"}'
    request = ReplayRequest(
        "POST", "/hooks", [("Host", "x"), ("Stripe-Signature", stale_signature(body))], body
    )
    async with webhook_app(server) as port:
        sent, record = await send(request, f"https://localhost:{port}", ssl_context=client)
    assert record.status == 400 and b"timestamp" in (record.capture.response_body or b"").lower()
    assert sent.endswith(body)
