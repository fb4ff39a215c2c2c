"""Who holds a tunnel name: the interface admission asks, and the one-node registry (no sharing).

A relay always keeps its own live tunnels and lost agents' leases in memory (``Relay.tunnels``,
``Relay.leases``). On one node those dicts are the whole truth, decided synchronously by
admission, exactly as before clusters existed: that is :class:`LocalRegistry`. In a cluster the
name may be held on another node, so admission also asks a shared registry (``shared``), which
answers asynchronously (relay/cluster/redis_registry.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Claim:
    """A registry's answer to "may this agent hold this name here?".

    ``how`` is "fresh" (the name was free), "resumed" (the agent's resume token matched),
    "takeover" (the same agent token asked to take it) or "joined" (the agent, holding the name
    through another node, added a link through this one) when granted; otherwise ``code`` and
    ``message`` say why not, as a refusal to the agent.
    """

    how: str = ""
    code: str = ""
    message: str = ""

    @property
    def granted(self) -> bool:
        return not self.code


class NameRegistry(Protocol):
    """The names of this node's tunnels as the other nodes see them."""

    @property
    def shared(self) -> bool:
        """Whether admission must ask :meth:`claim` (False: the relay's own dicts decide)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

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
        """Take ``name`` for an agent of token ``label`` on this node, atomically.

        ``presented`` is the agent's resume token, ``fresh`` the one to issue if the name is
        not resumed; ``takeover``: the agent asked to take over a name of its own token;
        ``policy``: the tunnel's per-request rules, for the nodes its visitors reach;
        ``join``: the agent holds the name through other nodes and adds this one (granted only
        with its resume token); ``limit``: the token's max_tunnels, counted across the cluster
        (0: no limit).
        """
        ...

    def hold(self, name: str, label: str, resume: str) -> None:
        """The agent of ``name`` was lost: keep its name for its resume token (the lease)."""
        ...

    def release(self, name: str) -> None:
        """The agent of ``name`` left on purpose, or its lease ended: the name is free."""
        ...


class LocalRegistry:
    """One relay: nothing is shared; the relay's tunnels and leases dicts decide."""

    shared = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

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
        return Claim("fresh")  # never asked: admission decides from the dicts (shared is False)

    def hold(self, name: str, label: str, resume: str) -> None:
        pass

    def release(self, name: str) -> None:
        pass
