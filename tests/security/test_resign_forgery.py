"""Anyone can post to a public URL. A visitor's forged webhook (a signature made without the
sender's secret) is refused by the app; replaying it with re-signing must not turn it into one
the app accepts, signed with the developer's own secret. A genuine one (stale) still is."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest

from inspector.message import ReplayRequest
from inspector.resign import ResignError, resign
from tests.inspector.test_webhook_replay import SECRET, cli, stale_signature, webhook_app
from tests.support.cli import molehill_process
from tests.support.stack import running_relay

FORGED_BODY = json.dumps({"id": "evt_forged", "type": "invoice.paid", "amount": 0}).encode()
GENUINE_BODY = json.dumps({"id": "evt_real", "type": "invoice.paid"}).encode()


def forged_signature(body: bytes) -> str:
    """What a visitor can make: the right shape, a key that is not the sender's."""
    stamp = int(time.time())
    digest = hmac.new(b"a guess", f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


async def stored_ids(api: str, count: int) -> list[str]:
    async with httpx.AsyncClient(base_url=api) as c:
        for _ in range(200):  # the store runs on idle CPU
            found = (await c.get("/api/requests/http")).json()["requests"]
            if len(found) >= count:
                return [r["id"] for r in reversed(found)]
            await asyncio.sleep(0.05)
    raise AssertionError("the webhooks were never stored")


async def test_a_forged_webhook_is_not_signed_with_the_developers_secret(tmp_path):
    store = tmp_path / "captures.sqlite3"
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
            for body, signature in (
                (FORGED_BODY, forged_signature(FORGED_BODY)),
                (GENUINE_BODY, stale_signature(GENUINE_BODY)),
            ):
                sent = await c.post(
                    "/hooks/stripe", content=body, headers={"Stripe-Signature": signature}
                )
                assert sent.status_code == 400  # the app refuses both: forged, and stale
        for _ in range(2):
            json.loads(await agent.line())
        forged_id, genuine_id = await stored_ids(api, 2)
        async with httpx.AsyncClient(base_url=api, timeout=30) as c:
            forged = await c.post(f"/api/requests/http/{forged_id}/replay")
            genuine = await c.post(f"/api/requests/http/{genuine_id}/replay")
            # An edit of a genuine webhook is the developer's own: signed afresh.
            edited_body = GENUINE_BODY.replace(b"evt_real", b"evt_edited")
            edited = await c.post(
                f"/api/requests/http/{genuine_id}/replay",
                json={"edit": {"body": edited_body.decode()}},
            )
        assert forged.status_code == 400, forged.text
        assert "does not verify" in forged.json()["msg"]
        assert genuine.status_code == 200 and genuine.json()["status_code"] == 200, genuine.text
        assert edited.status_code == 200 and edited.json()["status_code"] == 200, edited.text
        # The CLI (the store's copy) refuses the forgery the same way, and sends nothing.
        code, _, err = await cli(store, "replay", forged_id, "--webhook-secret", f"stripe={SECRET}")
        assert code == 1 and "does not verify" in err, err
        async with httpx.AsyncClient(base_url=api) as c:
            listed = (await c.get("/api/requests/http")).json()["requests"]
        assert [r["replay_of"] for r in listed].count(forged_id) == 0
        assert await agent.terminate() == 0


BODY = b'{"id":"evt_1"}'
STANDARD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La"
SECRETS = {"stripe": "whsec_s", "github": "gh", "standard": STANDARD}
KEYS = {"stripe": b"whsec_s", "github": b"gh", "standard": base64.b64decode(STANDARD[6:])}


def signed_with(kind: str, key: bytes) -> ReplayRequest:
    """A webhook of ``kind`` signed (at an old time) with ``key``."""
    stamp = "1700000000"
    if kind == "stripe":
        mac = hmac.new(key, f"{stamp}.".encode() + BODY, hashlib.sha256).hexdigest()
        headers = [("Stripe-Signature", f"t={stamp},v1={mac}")]
    elif kind == "github":
        mac = hmac.new(key, BODY, hashlib.sha256).hexdigest()
        headers = [("X-Hub-Signature-256", f"sha256={mac}")]
    else:
        raw = hmac.new(key, f"msg_1.{stamp}.".encode() + BODY, hashlib.sha256).digest()
        headers = [
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", stamp),
            ("webhook-signature", f"v1,{base64.b64encode(raw).decode()}"),
        ]
    return ReplayRequest("POST", "/hook", [("Host", "h"), *headers], BODY)


@pytest.mark.parametrize("kind", ["stripe", "github", "standard"])
def test_each_scheme_re_signs_only_a_signature_that_verifies(kind):
    genuine = signed_with(kind, KEYS[kind])
    assert "re-signed" in resign(genuine, {kind: SECRETS[kind]})[0]
    forged = signed_with(kind, b"not the secret")
    before = list(forged.headers)
    with pytest.raises(ResignError, match="does not verify"):
        resign(forged, {kind: SECRETS[kind]})
    assert forged.headers == before
    # An edit's body is the developer's: the signature checked is the captured request's.
    edited = signed_with(kind, KEYS[kind])
    edited.body = b'{"id":"evt_2"}'
    captured = signed_with(kind, KEYS[kind])
    assert "re-signed" in resign(edited, {kind: SECRETS[kind]}, captured=captured)[0]
    with pytest.raises(ResignError, match="does not verify"):
        resign(edited.copy(), {kind: SECRETS[kind]}, captured=forged)
    # A signature header the edit added (the capture had none) is the developer's to sign.
    unsigned = ReplayRequest("POST", "/hook", [("Host", "h")], BODY)
    assert "re-signed" in resign(edited.copy(), {kind: SECRETS[kind]}, captured=unsigned)[0]
