"""Why the agent could not reach the relay, in words that say what to do."""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

from websockets.http11 import Response

from relay.agent.relay_text import printable


class NotAnAgentEndpoint(ConnectionError):
    """The relay URL answered HTTP, but not with a websocket: a wrong port, path or server."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status

    @classmethod
    def from_response(cls, response: Response) -> NotAnAgentEndpoint:
        body = (response.body or b"").decode("utf-8", "replace").strip()
        # One line, a bounded one, and no terminal controls: any server at that URL wrote it.
        text = printable(" ".join(body.split()), 300)
        if "X-Molehill-Error" in response.headers:  # a molehill relay's own error page
            return cls(
                f"the relay answered HTTP {response.status_code}: {text}", response.status_code
            )
        return cls(
            f"answered HTTP {response.status_code}, not a websocket: this is not a molehill "
            "relay's agents' endpoint (`molehill relay` prints it as 'agents')",
            response.status_code,
        )


class Unreachable(Exception):
    """The first connection to the relay did not succeed in time; the reason says why."""

    def __init__(self, reason: str, waited: float | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.waited = waited  # seconds of retries before giving up; None: no retry would help


def relay_host(url: str) -> str:
    """The host:port part of a relay URL, for messages."""
    return urlsplit(url).netloc


def relay_base(url: str) -> str:
    """scheme://host:port of a relay URL, with the default port spelled out."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}"


def describe(exc: BaseException, relay: str) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer from the relay at {relay} (timed out)"
    if isinstance(exc, socket.gaierror):
        host = urlsplit(relay).hostname or relay
        return f"cannot resolve {host} ({exc.strerror or exc}); check the host in {relay}"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing listens at {relay_base(relay)} — is the relay running? (molehill relay)"
    if isinstance(exc, NotAnAgentEndpoint):
        return f"{relay}: {exc}"
    if isinstance(exc, ssl.SSLError):
        return (
            f"the TLS handshake with {relay} failed ({exc.reason or exc}); "
            "a relay without TLS is reached with ws://, not wss://"
        )
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot reach the relay at {relay}: {exc.strerror}"
    detail = str(exc) or exc.__class__.__name__
    if relay.startswith("wss://") and isinstance(exc, ConnectionError):
        detail += " (is the relay serving TLS? a relay without TLS is reached with ws://)"
    return f"{relay}: {detail}"
