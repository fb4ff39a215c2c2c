"""Agent tokens shared by a cluster's nodes, kept in Redis (`molehill relay token ... --cluster`).

One hash, ``molehill:tokens``: field = the token's label, value = JSON of its config entry (the
same keys as a ``[[tokens]]`` table: hash, names, max_tunnels, revoked, ports, max_tcp_ports),
never the token itself. Every change is published on the cluster's channel; each node merges
these with the tokens of its own config file (the file's entry wins for a label in both).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis

from relay.cluster import records, scripts
from relay.server.access import TokenEntry
from relay.server.config import ConfigError, token_entries

log = logging.getLogger("molehill.relay")

KEY = records.TOKENS_KEY
TIMEOUT = 5.0


def decode(fields: Mapping[Any, Any]) -> list[TokenEntry]:
    """Redis's hash as entries; a field that is not a valid entry is skipped, and logged (one
    bad write must not lock every agent out of every node)."""
    entries = []
    for label, value in sorted(fields.items()):
        label = _text(label)
        try:
            item = json.loads(_text(value))
            if not isinstance(item, dict):
                raise ConfigError("not a JSON object")
            entries += token_entries([{**item, "label": label}], f"Redis {KEY}")
        except (ValueError, ConfigError) as exc:
            log.warning("shared token %r in Redis skipped: %s", label[:63], exc)
    return entries


def merged(own: Sequence[TokenEntry], shared: Sequence[TokenEntry]) -> tuple[TokenEntry, ...]:
    """The config file's tokens, then the shared ones whose labels the file does not use."""
    labels = {entry.label for entry in own}
    return (*own, *(entry for entry in shared if entry.label not in labels))


def client(redis_url: str) -> aioredis.Redis:
    return aioredis.from_url(
        redis_url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, decode_responses=True
    )


async def add(redis_url: str, label: str, entry: dict[str, Any]) -> bool:
    """Store a new token's entry; False if ``label`` is taken (HSETNX: two adders, one wins)."""
    token_entries([{**entry, "label": label}], f"Redis {KEY}")  # the nodes must accept it
    redis = client(redis_url)
    try:
        if not await redis.hsetnx(KEY, label, json.dumps(entry, sort_keys=True)):
            return False
        await redis.publish(scripts.CHANNEL, KEY)
        return True
    finally:
        await redis.aclose()


async def revoke(redis_url: str, label: str) -> bool:
    """Mark ``label`` revoked (kept, so that `list` still shows it); False if there is none."""
    redis = client(redis_url)
    try:
        value = await redis.hget(KEY, label)
        if value is None:
            return False
        item = json.loads(value)
        item["revoked"] = True
        await redis.hset(KEY, label, json.dumps(item, sort_keys=True))
        await redis.publish(scripts.CHANNEL, KEY)
        return True
    finally:
        await redis.aclose()


async def entries(redis_url: str) -> list[TokenEntry]:
    redis = client(redis_url)
    try:
        return decode(await redis.hgetall(KEY))
    finally:
        await redis.aclose()


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
