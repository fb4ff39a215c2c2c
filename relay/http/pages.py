"""The short error pages a visitor sees: HTML for browsers, plain text for everything else."""

from __future__ import annotations

import html
from dataclasses import dataclass

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    429: "Too Many Requests",
    404: "Not Found",
    408: "Request Timeout",
    413: "Content Too Large",
    421: "Misdirected Request",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
    504: "Gateway Timeout",
}

_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{status} {title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;
color:#222}}h1{{font-size:1.4em}}code{{background:#f2f2f2;padding:.1em .3em;border-radius:3px}}
small{{color:#777}}</style></head>
<body><h1>{title}</h1><p>{detail}</p><p>{hint}</p><p><small>molehill relay &middot; {status}
</small></p></body></html>
"""


@dataclass(frozen=True, slots=True)
class ErrorPage:
    """What went wrong (``title``, ``detail``) and what to do about it (``hint``)."""

    status: int
    title: str
    detail: str
    hint: str
    headers: tuple[tuple[str, str], ...] = ()

    def render(self, accept: str = "", head_only: bool = False) -> bytes:
        """A complete HTTP/1.1 response that closes the connection."""
        if "text/html" in accept:
            body = _HTML.format(
                status=self.status,
                title=html.escape(self.title),
                detail=html.escape(self.detail),
                hint=html.escape(self.hint).replace("`", ""),
            ).encode()
            ctype = "text/html; charset=utf-8"
        else:
            body = f"{self.status} {self.title}\n{self.detail}\n{self.hint}\n".encode()
            ctype = "text/plain; charset=utf-8"
        head = (
            f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Error')}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\nX-Molehill-Error: "
            f"{self.status}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in self.headers)
            + "\r\n"
        ).encode()
        return head if head_only else head + body


def unknown_tunnel(name: str, domain: str) -> ErrorPage:
    return ErrorPage(
        404,
        f"No tunnel named '{name}'",
        f"Nothing is connected to this relay as '{name}.{domain}'.",
        f"Start one with: molehill http PORT --subdomain {name}",
    )


def no_tunnel_in_host(host: str, domain: str) -> ErrorPage:
    return ErrorPage(
        404,
        "No tunnel in this address",
        f"The address '{host}' does not name a tunnel on this relay.",
        f"Tunnels live at http://NAME.{domain}; start one with: molehill http PORT",
    )


def agents_elsewhere(host: str, agents: tuple[str, int]) -> ErrorPage:
    """A websocket upgrade to the public port that names no tunnel: an agent at the wrong port."""
    scheme, port = agents
    name = host.rpartition(":")[0] if host.rpartition(":")[2].isdigit() else host
    return ErrorPage(
        404,
        "This is the relay's public port, not its agents' port",
        f"Agents connect to this relay at port {port}, not to its public HTTP port.",
        f"Use: molehill http PORT --relay {scheme}://{name or 'HOST'}:{port}",
    )


def tunnel_offline(name: str) -> ErrorPage:
    return ErrorPage(
        503,
        f"Tunnel '{name}' is offline",
        f"The agent serving '{name}' is disconnected; the name is held while it reconnects.",
        "If you run this tunnel, check that `molehill` is still running and can reach the relay.",
    )


def local_app_down(name: str, detail: str | None = None) -> ErrorPage:
    """``detail``: the agent's own words (its local address and the error), or None to keep
    them from visitors: a public relay does not tell the world where an app listens."""
    return ErrorPage(
        502,
        f"Tunnel '{name}' is up, but the local app did not answer",
        detail or "The agent is connected, but the app behind this tunnel did not answer.",
        "If you run this tunnel, start your app (or check its port), then reload this page.",
    )


def bad_request(detail: str) -> ErrorPage:
    return ErrorPage(400, "Bad request", detail, "The relay could not read this HTTP request.")


def for_http_error(status: int, detail: str) -> ErrorPage:
    """The page for a request the framer refused with ``status``."""
    if status == 431:
        return headers_too_large(detail)
    if status == 505:
        return version_not_supported(detail)
    if status == 501:
        return ErrorPage(
            501, "Not implemented", detail, "Send the body with Content-Length or chunked."
        )
    if status == 413:
        return ErrorPage(413, "Request too large", detail, "Send a smaller request.")
    if status == 400:
        return bad_request(detail)
    return ErrorPage(status, "Request refused", detail, "The relay could not read this request.")


def headers_too_large(detail: str) -> ErrorPage:
    return ErrorPage(431, "Request headers too large", detail, "Send fewer or smaller headers.")


def request_timeout() -> ErrorPage:
    return ErrorPage(408, "Request timeout", "The request head did not arrive in time.", "")


def misdirected(name: str) -> ErrorPage:
    return ErrorPage(
        421,
        "Misdirected request",
        f"This connection still awaits answers from the tunnel '{name}'; a request for another "
        "tunnel cannot be pipelined behind them.",
        "Send it on a new connection (browsers and proxies retry by themselves).",
    )


def unauthorized(name: str) -> ErrorPage:
    return ErrorPage(
        401,
        "Sign-in required",
        f"The tunnel '{name}' asks for a user name and password.",
        "Ask the person who shared this link for them.",
        headers=(("WWW-Authenticate", f'Basic realm="molehill: {name}", charset="UTF-8"'),),
    )


def forbidden(name: str, ip: str) -> ErrorPage:
    return ErrorPage(
        403,
        "Not allowed from your address",
        f"The tunnel '{name}' does not accept visitors from {ip}.",
        "Ask the person who shared this link to allow your network.",
    )


def too_many_requests(name: str) -> ErrorPage:
    return ErrorPage(
        429,
        "Too many requests",
        f"The tunnel '{name}' is receiving more requests than its relay allows.",
        "Wait a moment and try again.",
        headers=(("Retry-After", "1"),),
    )


def too_many_connections(ip: str) -> ErrorPage:
    return ErrorPage(
        429,
        "Too many connections",
        f"There are too many open connections from {ip} to this relay.",
        "Close some connections and try again.",
        headers=(("Retry-After", "5"),),
    )


def tunnel_busy(name: str) -> ErrorPage:
    return ErrorPage(
        503,
        f"Tunnel '{name}' is busy",
        f"The tunnel '{name}' carries as many connections as its relay allows.",
        "Try again in a moment.",
        headers=(("Retry-After", "2"),),
    )


def client_share(name: str, ip: str) -> ErrorPage:
    return ErrorPage(
        503,
        f"Too many connections from your address to '{name}'",
        f"{ip} holds as many of the tunnel '{name}' connections as one address may.",
        "Close some connections (or wait for idle ones to time out) and try again.",
        headers=(("Retry-After", "2"),),
    )


def version_not_supported(detail: str) -> ErrorPage:
    return ErrorPage(505, "HTTP version not supported", detail, "Send HTTP/1.1 requests.")
