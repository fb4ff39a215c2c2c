"""The shared registry: tunnel names in Redis, taken atomically, renewed while their agents stay.

Every change to a name is one Lua script (relay/cluster/scripts.py), so two nodes racing for a
name cannot both win. A node renews its names and its own presence every ``renew_every``
seconds; a name another node took meanwhile is dropped here (``on_lost``). When Redis cannot be
reached, claims are refused with a reason and the tunnels already open keep working; the next
renewal after Redis is back registers them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from relay.cluster import records, scripts
from relay.cluster.registry import Claim
from relay.cluster.settings import ClusterSettings, redact_url

log = logging.getLogger("molehill.relay")

TIMEOUT = 2.0  # seconds for any one Redis call: a claim waits no longer than this


class RedisRegistry:
    """Names shared through Redis. ``owned()`` lists this node's live tunnels as (name, token
    label, resume token, policy, joined: the agent holds it through other nodes too);
    ``on_lost(name)`` stops serving a name taken elsewhere."""

    shared = True

    def __init__(
        self,
        cluster: ClusterSettings,
        lease: float,
        owned: Callable[[], Iterable[tuple[str, str, str, str, bool]]],
        on_lost: Callable[[str], None],
        log_event: Callable[..., None],
    ) -> None:
        self.cluster = cluster
        self.node = cluster.node_id
        # A live name outlives a dead node by the lease, as a lost agent's name does on one
        # relay: its agent may come back (on any node) with its resume token until then.
        self.ttl_ms = max(1000, int(lease * 1000))
        self.renew_every = min(5.0, max(0.2, lease / 3))
        self.node_ttl_ms = int(self.renew_every * 3 * 1000)
        self.owned = owned
        self.on_lost = on_lost
        self.log_event = log_event
        self.reachable = True
        self.renewals = 0
        self.redis = aioredis.from_url(
            cluster.redis_url,
            socket_timeout=TIMEOUT,
            socket_connect_timeout=TIMEOUT,
            health_check_interval=0,
        )
        self._claim = self.redis.register_script(scripts.CLAIM)
        self._renew = self.redis.register_script(scripts.RENEW)
        self._hold = self.redis.register_script(scripts.HOLD)
        self._release = self.redis.register_script(scripts.RELEASE)
        # Holds, releases and renewals run one at a time, in the order they were asked for:
        # a name released and then renewed from an older list must not come back.
        self._order = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._renewer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Join: fail now, with the reason, if Redis is not there (a node starting blind would
        hand out names another node holds)."""
        try:
            async with asyncio.timeout(TIMEOUT * 2):
                await self.redis.ping()
                await self._renew_once()
        except (RedisError, OSError, TimeoutError) as exc:
            await self.redis.aclose()
            raise ConnectionError(
                f"cannot reach the cluster's Redis at {redact_url(self.cluster.redis_url)}: "
                f"{str(exc).rstrip('.') or type(exc).__name__}"
            ) from None
        self._renewer = asyncio.create_task(self._renew_forever())

    async def announce(self) -> None:
        """Tell the other nodes' directories that this node listens now: they link to it."""
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(TIMEOUT):
                await self.redis.publish(scripts.CHANNEL, records.node_key(self.node))

    async def stop(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        if self._tasks:  # the last holds and releases (agents told to go elsewhere)
            await asyncio.wait(self._tasks, timeout=TIMEOUT)
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(TIMEOUT):
                await self.redis.delete(records.node_key(self.node))
                await self.redis.hset(records.seen_key(self.node), "stopped", "1")
                await self.redis.publish(scripts.CHANNEL, records.node_key(self.node))
        await self.redis.aclose()

    async def claim(
        self,
        name: str,
        label: str,
        presented: str,
        fresh: str,
        takeover: bool,
        policy: str,
        join: bool = False,
        limit: int = 0,
    ) -> Claim:
        args = [
            self.node,
            label,
            records.resume_digest(presented),
            records.resume_digest(fresh),
            "1" if takeover else "0",
            self.ttl_ms,
            records.NODE_PREFIX,
            policy,
            "1" if join else "0",
            limit,
        ]
        try:
            async with asyncio.timeout(TIMEOUT):
                keys = [records.name_key(name)] + ([records.label_key(label)] if label else [])
                reply = await self._claim(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._unreachable(exc)
            return records.unavailable(
                f"Redis at {redact_url(self.cluster.redis_url)}: {exc or type(exc).__name__}"
            )
        self._reachable()
        return records.claim_from_reply(name, reply)

    def hold(self, name: str, label: str, resume: str) -> None:
        args: list[str | int] = [
            self.node,
            records.resume_digest(resume),
            self.ttl_ms,
            records.NODE_PREFIX,
        ]
        self._later(self._hold, name, args)

    def release(self, name: str) -> None:
        self._later(self._release, name, [self.node, records.NODE_PREFIX])

    # -- in the background ---------------------------------------------------------------------

    def _later(self, script: object, name: str, args: list[str | int]) -> None:
        async def run() -> None:
            async with self._order:
                try:
                    async with asyncio.timeout(TIMEOUT):
                        await script(keys=[records.name_key(name)], args=args)  # type: ignore[operator]
                except (RedisError, OSError, TimeoutError) as exc:
                    # The name's key then lives out its TTL (the lease) in Redis.
                    self._unreachable(exc)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.renew_every)
            try:
                await self._renew_once()
            except (RedisError, OSError, TimeoutError) as exc:
                self._unreachable(exc)  # keep serving; try again next round
            else:
                self._reachable()

    async def _renew_once(self) -> None:
        async with self._order:
            names = list(self.owned())
            args: list[str | int | float] = [
                self.node,
                self.ttl_ms,
                records.node_key(self.node),
                self.cluster.node_url,
                self.node_ttl_ms,
                records.NODE_PREFIX,
            ]
            for _name, label, resume, policy, joined in names:
                args += [label, records.resume_digest(resume), policy, "1" if joined else "0"]
            keys = [records.name_key(name) for name, *_ in names]
            async with asyncio.timeout(TIMEOUT):
                reply = await self._renew(keys=keys, args=args)
        self.renewals += 1
        for name in records.lost_names(reply):
            self.on_lost(name)

    def _unreachable(self, exc: BaseException) -> None:
        if self.reachable:
            self.reachable = False
            self.log_event(
                "cluster_unreachable",
                redis=redact_url(self.cluster.redis_url),
                error=str(exc) or type(exc).__name__,
            )

    def _reachable(self) -> None:
        if not self.reachable:
            self.reachable = True
            self.log_event("cluster_reachable", redis=redact_url(self.cluster.redis_url))
