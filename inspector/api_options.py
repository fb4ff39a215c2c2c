"""The replay call's JSON options: their types checked, and an edit applied to the request."""

from __future__ import annotations

import base64
from typing import Any

from inspector.api_server import ApiError
from inspector.message import EditError, ReplayRequest, from_text


def check_options(options: dict[str, Any]) -> None:
    """The replay options' types, checked before anything is sent (400 naming the option)."""
    target = options.get("target")
    if target is not None and not isinstance(target, str):
        raise ApiError(400, '"target" must be a URL string, e.g. "http://localhost:3000"')
    secrets = options.get("webhook_secrets")
    if secrets is not None and not (
        isinstance(secrets, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in secrets.items())
    ):
        raise ApiError(
            400, '"webhook_secrets" must be an object of strings, {"stripe": "whsec_..."}'
        )
    for kind, value in (secrets or {}).items():
        if value.startswith("env:"):
            # env: reads this process's environment: a caller would pick any variable of it
            # as a signing key (and learn whether it is set).
            raise ApiError(400, f'"webhook_secrets": give the {kind} secret itself, not env:')


def _one_line(edit: dict[str, Any]) -> None:
    """Refuse a line break in the method, target or a header: joined into the message's text it
    would start a header (or the body) of its own, sent though nobody wrote it as one."""
    fields = [("method", edit.get("method")), ("target", edit.get("target"))]
    headers = edit.get("headers")
    if isinstance(headers, list):
        for number, pair in enumerate(headers):
            if isinstance(pair, (list, tuple)):
                fields += [(f"headers[{number}]", part) for part in pair]
    for name, value in fields:
        if isinstance(value, str) and ("\r" in value or "\n" in value):
            raise ApiError(400, f"edit.{name} has a line break (CR or LF): {value[:60]!r}")


def edited(request: ReplayRequest, edit: Any) -> ReplayRequest:
    """Edits from JSON: {"message": "METHOD /path HTTP/1.1\\n..."} or any of method, target,
    headers ([[name, value], ...], replacing all), body (text) or body_base64."""
    if not isinstance(edit, dict):
        raise ApiError(400, '"edit" must be an object')
    if "message" in edit:
        try:
            return from_text(str(edit["message"]), request.body)
        except EditError as exc:
            raise ApiError(400, f"edit.message {exc}") from None
    _one_line(edit)
    try:
        if "method" in edit or "target" in edit or "headers" in edit:
            head = [f"{edit.get('method', request.method)} {edit.get('target', request.target)} "
                    f"{request.version}"]  # fmt: skip
            headers = edit.get("headers", request.headers)
            head += [f"{n}: {v}" for n, v in headers]
            checked = from_text("\n".join(head) + "\n\n")
            request.method, request.target, request.headers = (
                checked.method, checked.target, checked.headers
            )  # fmt: skip
        if "body" in edit:
            request.body = str(edit["body"]).encode("utf-8")
        elif "body_base64" in edit:
            request.body = base64.b64decode(str(edit["body_base64"]), validate=True)
    except EditError as exc:
        raise ApiError(400, f"edit: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise ApiError(400, f"edit: {exc}") from None
    return request
