"""Re-signed webhooks verify with the providers' own code (stripe, standardwebhooks, GitHub's
documented HMAC check); stale captures do not; secrets from the environment; refusals. (A
signature the secret does not verify is refused: tests/security/test_resign_forgery.py.)"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
import stripe

from inspector.message import ReplayRequest
from inspector.resign import ResignError, parse_secret_flag, resign

BODY = b'{"id":"evt_1","type":"payment_intent.succeeded"}'
STALE = int(time.time()) - 3600


def request(*headers: tuple[str, str]) -> ReplayRequest:
    return ReplayRequest("POST", "/hook", [("Host", "h.example"), *headers], BODY)


def test_stripe_signature_verifies_with_stripe_package():
    secret = "whsec_test_stripe_secret"
    old = hmac.new(secret.encode(), f"{STALE}.".encode() + BODY, hashlib.sha256).hexdigest()
    req = request(("Stripe-Signature", f"t={STALE},v1={old}"))
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(BODY, req.header("stripe-signature"), secret)
    notes = resign(req, {"stripe": secret})
    assert "re-signed the stripe webhook" in notes[0]
    event = stripe.Webhook.construct_event(BODY, req.header("stripe-signature"), secret)
    assert event["id"] == "evt_1"


def test_standard_webhooks_verify_with_their_package():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    stale = standardwebhooks.Webhook(secret).sign(
        "msg_1", datetime.fromtimestamp(STALE, UTC), BODY.decode()
    )
    req = request(
        ("webhook-id", "msg_1"), ("webhook-timestamp", str(STALE)), ("webhook-signature", stale)
    )
    resign(req, {"standard": secret})
    headers = {n: v for n, v in req.headers}
    assert standardwebhooks.Webhook(secret).verify(BODY, headers)["id"] == "evt_1"


def test_github_signature_matches_the_documented_check(monkeypatch):
    monkeypatch.setenv("GH_HOOK_SECRET", "It's a Secret to Everybody")
    key = b"It's a Secret to Everybody"
    sent = "sha256=" + hmac.new(key, BODY, hashlib.sha256).hexdigest()  # genuine; no timestamp
    req = request(("X-Hub-Signature-256", sent), ("X-Hub-Signature", "sha1=00"))
    resign(req, {"github": "env:GH_HOOK_SECRET"})
    expected = "sha256=" + hmac.new(key, BODY, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, req.header("x-hub-signature-256") or "")
    assert req.header("x-hub-signature") == "sha1=" + hmac.new(key, BODY, "sha1").hexdigest()


def test_without_a_secret_the_signature_is_sent_as_captured_with_a_note():
    req = request(("Stripe-Signature", "t=1,v1=ab"))
    notes = resign(req, {})
    assert req.header("stripe-signature") == "t=1,v1=ab"
    assert "--webhook-secret stripe=SECRET" in notes[0]


def test_a_redacted_body_is_not_signed():
    req = request(("X-Hub-Signature-256", "sha256=00"))
    with pytest.raises(ResignError, match=r"\[redacted\]"):
        resign(req, {"github": "s3cret"}, body_redacted=True)


def test_hostile_secrets_and_flags():
    with pytest.raises(ResignError, match="not set"):
        resign(request(("X-Hub-Signature-256", "x")), {"github": "env:MOLEHILL_NO_SUCH_VAR"})
    with pytest.raises(ResignError, match="not base64"):
        resign(
            request(("webhook-id", "m"), ("webhook-signature", "v1,x")), {"standard": "whsec_!!"}
        )
    with pytest.raises(ResignError, match="no webhook-id"):
        resign(request(("webhook-signature", "v1,x")), {"standard": "whsec_AAAA"})
    for flag in ("stripe", "paypal=x", "github=", "github=env:", "=x"):
        with pytest.raises(ResignError):
            parse_secret_flag(flag)
    assert parse_secret_flag("Stripe=env:X") == ("stripe", "env:X")


def test_a_standard_secret_read_from_a_file_keeps_working():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    stale = standardwebhooks.Webhook(secret).sign(
        "msg_1", datetime.fromtimestamp(STALE, UTC), BODY.decode()
    )
    req = request(
        ("webhook-id", "msg_1"), ("webhook-timestamp", str(STALE)), ("webhook-signature", stale)
    )
    notes = resign(req, {"standard": secret + "\n"})  # as $(cat file) keeps it, or a .env line
    assert "re-signed" in notes[0]
    assert standardwebhooks.Webhook(secret).verify(BODY, dict(req.headers))["id"] == "evt_1"
