"""A node's cluster settings, checked before anything connects: Redis, node id and URL, secret."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from relay.http.names import label_problem

MIN_SECRET = 16  # characters; `python -c "import secrets; print(secrets.token_urlsafe(32))"`
_DB = re.compile(r"^/(?:\d{1,2})?$")


@dataclass(frozen=True)
class ClusterSettings:
    """How one relay node joins a cluster: the shared Redis, its own id and URL, the secret."""

    redis_url: str
    node_id: str
    node_url: str  # where other nodes reach this one (the node-to-node link; not used yet)
    secret: str  # shared by the nodes; authenticates the node-to-node link

    def __repr__(self) -> str:  # never print the secret, or Redis's password in its URL
        return f"ClusterSettings(redis={redact_url(self.redis_url)!r}, node_id={self.node_id!r})"


def redact_url(url: str) -> str:
    """``url`` without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = parts.username or ""
    return f"{parts.scheme}://{user}:***@{host}{port}{parts.path}"


def parse_cluster(redis_url: str, node_id: str, node_url: str, secret: str) -> ClusterSettings:
    """Check the four cluster settings together; raise ValueError saying what to fix."""
    problems = []
    problems += [f"redis URL: {p}" for p in _redis_url_problems(redis_url)]
    if not node_id:
        problems.append("node id: missing (give each node its own, e.g. --node-id relay1)")
    elif problem := label_problem(node_id):
        problems.append(f"node id: {problem}")
    problems += [f"node URL: {p}" for p in _node_url_problems(node_url)]
    if len(secret) < MIN_SECRET:
        problems.append(
            f"cluster secret: {'missing' if not secret else 'too short'} (at least {MIN_SECRET} "
            "characters, the same on every node; make one with: "
            'python3 -c "import secrets; print(secrets.token_urlsafe(32))")'
        )
    if problems:
        raise ValueError("; ".join(problems))
    return ClusterSettings(redis_url, node_id, node_url, secret)


def _redis_url_problems(url: str) -> list[str]:
    if not url:
        return ["missing (e.g. redis://127.0.0.1:6379/0)"]
    shown = redact_url(url) if "@" in url else url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return [f"{shown[:80]!r} is not a URL ({exc})"]
    if parts.scheme not in ("redis", "rediss"):
        return [f"{shown[:80]!r}: the scheme must be redis:// or rediss:// (TLS)"]
    if not parts.hostname:
        return [f"{shown[:80]!r} names no host"]
    if port == 0:
        return [f"{shown[:80]!r}: port 0 is not a port"]
    if not _DB.fullmatch(parts.path or "/") or (parts.path[1:] and int(parts.path[1:]) > 15):
        return [f"{shown[:80]!r}: the path must be a database number, /0 to /15"]
    if parts.query or parts.fragment:
        return [f"{shown[:80]!r}: options after '?' or '#' are not supported"]
    return []


def _node_url_problems(url: str) -> list[str]:
    if not url:
        return ["missing (where the other nodes reach this one, e.g. ws://10.0.0.5:7000)"]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return [f"{url[:80]!r} is not a URL ({exc})"]
    if parts.scheme not in ("ws", "wss") or not parts.hostname or port == 0:
        return [f"{url[:80]!r}: expected ws://HOST:PORT or wss://HOST:PORT"]
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return [f"{url[:80]!r}: give only the scheme, host and port"]
    return []
