"""Every node's copy of who holds which name, and where each node listens: read from Redis once,
then kept current by its pub/sub channel, so routing a visitor costs no Redis round trip.

Messages can be missed (a reconnect, a slow subscriber): the whole copy is read again on every
(re)subscription and every ``RESYNC`` seconds, which also notices nodes that came or went.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from relay.cluster import records, scripts
from relay.cluster.redis_registry import TIMEOUT

log = logging.getLogger("molehill.relay")

RESYNC = 5.0  # seconds between full reads (a node that died is noticed by then)


@dataclass(frozen=True, slots=True)
class Holder:
    """Where a name is served: the node, its URL, and the tunnel's per-request policy (JSON)."""

    node: str
    url: str
    policy: str


class Directory:
    """``holders(name)``: the other nodes that serve ``name`` now, from the local copy.

    ``names`` and ``nodes`` are read by others and changed only here, through ``_set_name``,
    ``_set_node`` and ``_replace``: they keep ``holders``' answers (asked per forwarded
    request) in step with the copy."""

    def __init__(self, redis_url: str, me: str) -> None:
        self.me = me
        # name -> (nodes, state, policy): the nodes its agent holds it through, first one first
        self.names: dict[str, tuple[tuple[str, ...], str, str]] = {}
        self.nodes: dict[str, str] = {}  # node id -> URL, of the nodes alive at the last read
        # name -> holders(name), for names in ``names`` only (a visitor's made-up Host header
        # adds nothing): dropped for a name when it changes, all of them when a node does.
        self._holders: dict[str, tuple[Holder, ...]] = {}
        self.redis = aioredis.from_url(
            redis_url, socket_connect_timeout=TIMEOUT, health_check_interval=0
        )
        self.reads = 0  # full reads, for tests and metrics
        # The shared agent tokens' hash as read last; on_tokens(fields) is called on a change.
        self.tokens: dict[Any, Any] = {}
        self.on_tokens: Callable[[Mapping[Any, Any]], None] = lambda fields: None
        self.changed = asyncio.Event()  # set on every change applied (tests wait on it)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        await self._read_all()
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            # redis-py may swallow a cancellation inside get_message: the flag ends the loop
            # within its 1 s poll in any case.
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=3.0)
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await self.redis.aclose()

    def holders(self, name: str) -> tuple[Holder, ...]:
        """The nodes but this one through which ``name``'s agent is connected (an agent with
        several links has several), among the nodes alive at the last read."""
        found = self._holders.get(name)
        if found is not None:
            return found
        entry = self.names.get(name)
        if entry is None:
            return ()
        nodes, state, policy = entry
        found = (
            tuple(
                Holder(node, self.nodes[node], policy)
                for node in nodes
                if node != self.me and node in self.nodes
            )
            if state == "live"
            else ()
        )
        self._holders[name] = found
        return found

    # -- the only places ``names`` and ``nodes`` change --------------------------------------

    def _set_name(self, name: str, entry: tuple[tuple[str, ...], str, str] | None) -> None:
        """``name``'s record, or None when it is gone."""
        if entry is None:
            self.names.pop(name, None)
        else:
            self.names[name] = entry
        self._holders.pop(name, None)

    def _set_node(self, node: str, url: str | None) -> None:
        """Where ``node`` listens, or None when it is gone."""
        if url is None:
            self.nodes.pop(node, None)
        else:
            self.nodes[node] = url
        self._holders.clear()  # any name may be served through it

    def _replace(
        self, names: dict[str, tuple[tuple[str, ...], str, str]], nodes: dict[str, str]
    ) -> None:
        """The whole copy, read again."""
        self.names, self.nodes = names, nodes
        self._holders.clear()

    # -- keeping the copy current --------------------------------------------------------------

    async def _follow(self) -> None:
        while not self._stopping:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(scripts.CHANNEL)
                await self._read_all()  # what changed before the subscription took effect
                await self._listen(pubsub)
            except (RedisError, OSError, TimeoutError):
                await asyncio.sleep(1.0)  # Redis is away; the copy stays as it was
            finally:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    await pubsub.aclose()

    async def _listen(self, pubsub: aioredis.client.PubSub) -> None:
        loop = asyncio.get_running_loop()
        next_read = loop.time() + RESYNC
        while not self._stopping:
            wait = max(0.0, next_read - loop.time())
            message = await pubsub.get_message(timeout=min(wait, 1.0))
            if message is not None and message.get("type") == "message":
                await self._read_one(_text(message.get("data")))
            if loop.time() >= next_read:
                await self._read_all()
                next_read = loop.time() + RESYNC

    async def _read_one(self, key: str) -> None:
        if key.startswith(records.NODE_PREFIX):  # a node joined or left
            async with asyncio.timeout(TIMEOUT):
                url = await self.redis.get(key)
            self._set_node(key[len(records.NODE_PREFIX) :], None if url is None else _text(url))
            self.changed.set()
            return
        if key == records.TOKENS_KEY:
            async with asyncio.timeout(TIMEOUT):
                self._set_tokens(await self.redis.hgetall(key))
            return
        if not key.startswith(records.NAME_PREFIX):
            return
        name = key[len(records.NAME_PREFIX) :]
        async with asyncio.timeout(TIMEOUT):
            fields = await self.redis.hgetall(key)
            entry = _entry(fields)
            for node in entry[0] if entry else ():
                if node != self.me and node not in self.nodes:
                    url = await self.redis.get(records.node_key(node))
                    if url is not None:
                        self._set_node(node, _text(url))
        self._apply(name, fields)

    async def _read_all(self) -> None:
        async with asyncio.timeout(TIMEOUT * 4):
            names: dict[str, tuple[tuple[str, ...], str, str]] = {}
            keys = [key async for key in self.redis.scan_iter(records.NAME_PREFIX + "*", 500)]
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            for key, fields in zip(keys, await pipe.execute(), strict=True):
                entry = _entry(fields)
                if entry is not None:
                    names[_text(key)[len(records.NAME_PREFIX) :]] = entry
            node_keys = [key async for key in self.redis.scan_iter(records.NODE_PREFIX + "*")]
            urls = await self.redis.mget(node_keys) if node_keys else []
            tokens = await self.redis.hgetall(records.TOKENS_KEY)
        nodes = {
            _text(key)[len(records.NODE_PREFIX) :]: _text(url)
            for key, url in zip(node_keys, urls, strict=True)
            if url is not None
        }
        self._replace(names, nodes)
        self.reads += 1
        self._set_tokens(tokens)
        self.changed.set()

    def _set_tokens(self, fields: dict[Any, Any]) -> None:
        if fields != self.tokens:
            self.tokens = fields
            self.on_tokens(fields)

    def _apply(self, name: str, fields: Mapping[Any, Any]) -> None:
        self._set_name(name, _entry(fields))
        self.changed.set()


def _entry(fields: Mapping[Any, Any]) -> tuple[tuple[str, ...], str, str] | None:
    if not fields or b"node" not in fields:
        return None
    first = _text(fields[b"node"])
    # "nodes" counts only if it lists "node" (as the scripts read it): a record of an older
    # node, or written by hand, names its one holder
    others = _text(fields.get(b"nodes", b"")).split()
    nodes = tuple(dict.fromkeys((first, *others))) if first in others else (first,)
    return nodes, _text(fields.get(b"state", b"")), _text(fields.get(b"policy", b"{}"))


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
