"""Webhook re-signing: a replayed webhook gets a fresh timestamp and a signature that verifies.

Three schemes, each recognised by the header the sender put on the captured request:

- ``stripe``: ``Stripe-Signature: t=TIMESTAMP,v1=HEX``, HMAC-SHA256 of ``"{t}.{body}"``;
- ``github``: ``X-Hub-Signature-256: sha256=HEX``, HMAC-SHA256 of the body (and the older
  ``X-Hub-Signature: sha1=HEX`` too when the request has it);
- ``standard`` (Standard Webhooks): ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature: v1,BASE64`` of HMAC-SHA256 of ``"{id}.{timestamp}.{body}"``, keyed with the
  base64 secret after its ``whsec_`` prefix.

A secret is given as itself or as ``env:VAR_NAME`` (read from the environment when used).

Only what the sender signed is signed again: the captured signature must verify with the secret
(its timestamp aside, it is stale by nature). Anyone can post to a public URL; without this check
a visitor's forged webhook, refused by the app, would come back from a replay signed with the
developer's own secret, and be accepted.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import time
from collections.abc import Mapping

from inspector.message import ReplayRequest

KINDS = ("stripe", "github", "standard")
_HEADERS = {
    "stripe": "stripe-signature",
    "github": "x-hub-signature-256",
    "standard": "webhook-signature",
}


class ResignError(ValueError):
    """A webhook cannot be re-signed (no secret, a secret that does not decode, a redacted body)."""


def parse_secret_flag(text: str) -> tuple[str, str]:
    """``KIND=SECRET`` or ``KIND=env:VAR`` (the --webhook-secret flag) as (kind, spec)."""
    kind, sep, spec = text.partition("=")
    kind = kind.strip().lower()
    if not sep or kind not in KINDS:
        raise ResignError(
            f"--webhook-secret {text!r}: expected KIND=SECRET or KIND=env:VAR_NAME, with KIND "
            f"one of {', '.join(KINDS)}"
        )
    if not spec or spec == "env:":
        raise ResignError(f"--webhook-secret {kind}=: the secret is empty")
    return kind, spec


def resolve_secret(kind: str, spec: str, environ: Mapping[str, str] | None = None) -> str:
    """The secret itself: ``spec``, or the value of the variable ``env:VAR`` names."""
    if not spec.startswith("env:"):
        return spec
    name = spec[4:]
    value = (os.environ if environ is None else environ).get(name)
    if not value:
        raise ResignError(
            f"the {kind} webhook secret comes from ${name}, which is not set (or empty); "
            f"export {name}=... or give --webhook-secret {kind}=SECRET"
        )
    return value


def signed_with(request: ReplayRequest) -> list[str]:
    """The schemes whose signature header the request carries."""
    names = {n.lower() for n, _ in request.headers}
    return [kind for kind in KINDS if _HEADERS[kind] in names]


def resign(
    request: ReplayRequest,
    secrets: Mapping[str, str],
    *,
    body_redacted: bool = False,
    captured: ReplayRequest | None = None,
    now: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Give ``request`` fresh signatures for every scheme it is signed with and has a secret
    for (in place); notes saying what was done, and which signatures were left as captured.

    ``body_redacted``: the body is the store's redacted copy; signing it would vouch for a body
    the sender never sent, so that is refused. ``captured``: the request as captured when
    ``request`` is an edit of it; its signature is the one checked (``request``'s otherwise).
    """
    notes: list[str] = []
    stamp = int(time.time() if now is None else now)
    for kind in signed_with(request):
        spec = secrets.get(kind)
        if spec is None:
            notes.append(
                f"the request carries a {kind} signature, sent as captured (stale: the app may "
                f"refuse it); give --webhook-secret {kind}=SECRET to sign it afresh"
            )
            continue
        if body_redacted:
            raise ResignError(
                f"cannot re-sign the {kind} webhook: the stored body had secret keys replaced "
                "by [redacted], so a signature would vouch for a body the sender never sent. "
                "Replay it from the process that captured it (its local API keeps the "
                "original), or restore the values with --edit"
            )
        secret = resolve_secret(kind, spec, environ)
        checked = captured or request
        # A signature header the capture did not have was added in an edit: the developer's.
        added = captured is not None and captured.header(_HEADERS[kind]) is None
        if not added and not verifies(kind, checked, secret):
            raise ResignError(
                f"the captured {kind} signature does not verify with your {kind} secret: the "
                "sender did not sign this request (anyone can post to your public URL), or "
                "signed it with another secret. molehill re-signs only what the sender signed; "
                f"to send it anyway, remove its {_HEADERS[kind]} header with --edit"
            )
        if kind == "stripe":
            _stripe(request, secret, stamp)
        elif kind == "github":
            _github(request, secret)
        else:
            _standard(request, secret, stamp)
        notes.append(f"re-signed the {kind} webhook (timestamp {stamp})")
    return notes


def _hmac(key: bytes, data: bytes, digest: str = "sha256") -> bytes:
    return hmac.new(key, data, digest).digest()


def _signature(kind: str, key: bytes, body: bytes, stamp: str = "", message_id: str = "") -> str:
    """The signature value a ``kind`` sender computes over ``body``: Stripe's v1 hex, GitHub's
    ``sha256=`` hex, Standard Webhooks' ``v1,`` base64. Signing and checking both use it."""
    if kind == "stripe":
        return _hmac(key, f"{stamp}.".encode() + body).hex()
    if kind == "github":
        return "sha256=" + _hmac(key, body).hex()
    signed = f"{message_id}.{stamp}.".encode() + body
    return "v1," + base64.b64encode(_hmac(key, signed)).decode("ascii")


def _key(kind: str, secret: str) -> bytes:
    return standard_key(secret) if kind == "standard" else secret.encode()


def _stripe(request: ReplayRequest, secret: str, stamp: int) -> None:
    signature = _signature("stripe", secret.encode(), request.body, str(stamp))
    request.set_header("Stripe-Signature", f"t={stamp},v1={signature}")


def _github(request: ReplayRequest, secret: str) -> None:
    key = secret.encode()
    request.set_header("X-Hub-Signature-256", _signature("github", key, request.body))
    if request.header("x-hub-signature") is not None:
        request.set_header("X-Hub-Signature", "sha1=" + _hmac(key, request.body, "sha1").hex())


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (``whsec_`` + base64)."""
    # Surrounding whitespace is dropped (a secret read from a file ends in a newline), as the
    # standardwebhooks package does; anything else that is not base64 is an error, not skipped.
    text = secret.strip().removeprefix("whsec_")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ResignError(
            "the standard webhook secret is not base64 after its whsec_ prefix "
            "(Standard Webhooks secrets look like whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw)"
        ) from None


def _standard(request: ReplayRequest, secret: str, stamp: int) -> None:
    key = standard_key(secret)
    message_id = _message_id(request)
    request.set_header("webhook-timestamp", str(stamp))
    request.set_header(
        "webhook-signature", _signature("standard", key, request.body, str(stamp), message_id)
    )


def _message_id(request: ReplayRequest) -> str:
    message_id = request.header("webhook-id")
    if message_id is None:
        raise ResignError("the request has a webhook-signature but no webhook-id to sign")
    return message_id


def verifies(kind: str, request: ReplayRequest, secret: str) -> bool:
    """Whether the request's ``kind`` signature is the sender's: made with ``secret`` over its
    body (and the timestamp and id it carries), whatever its age."""
    key = _key(kind, secret)
    value = request.header(_HEADERS[kind]) or ""
    body = request.body
    if kind == "stripe":
        fields = [part.strip().partition("=") for part in value.split(",")]
        stamp = next((v for k, _, v in fields if k == "t"), "")
        expected = _signature(kind, key, body, stamp)
        offered = [v for k, _, v in fields if k == "v1"]
    elif kind == "github":
        expected = _signature(kind, key, body)
        offered = [value.strip()]
    else:
        stamp = request.header("webhook-timestamp") or ""
        expected = _signature(kind, key, body, stamp, _message_id(request))
        offered = value.split()
    return any(hmac.compare_digest(expected.encode(), o.encode("latin-1")) for o in offered)
