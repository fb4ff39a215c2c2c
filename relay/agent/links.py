"""An agent holding one tunnel through several relay nodes at once (``--relay`` given more than
once, or a host name resolving to several addresses): one link per URL (or per address), all
under one name and one resume token, so a cluster serves the tunnel's visitors through
whichever links are up, and a node that dies costs no name.

Each link is an :class:`Agent` of its own (connect, heartbeat, reconnect with backoff) whose
name and resume token are the tunnel's, shared. The first link to come online founds the
tunnel (the relay names it and mints its resume token: while no link is up, links connect
one at a time); the others then join it, saying so in their HELLO (``links``): a cluster node
adds itself to the name's holders only for the agent token and resume token of the agent that
holds it (relay/cluster/scripts.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

from relay.agent.client import Agent, AgentLink, AgentSettings, Refused
from relay.agent.connect_errors import Unreachable
from relay.agent.tcp import TcpLedger
from relay.events import (
    AgentEvent,
    ConnectionRecord,
    LinkChanged,
    Reconnected,
    Reconnecting,
    RequestRecord,
    TunnelClosed,
    TunnelOpen,
    TunnelRefused,
)
from relay.wire import codec as p

# Refusals a link takes as "not now" while another link is up, or may come up: its node
# carries another link of this tunnel already (one relay, or two URLs reaching one node), or
# the name is being founded again through another link (a new resume token on its way).
SIBLING_REFUSALS = frozenset({"link_here", "name_taken", "name_held"})


def agent_for(
    settings: AgentSettings, on_event: Callable[[AgentEvent], None] = lambda event: None
) -> Agent | LinkedAgent:
    """One link (an Agent) for one relay URL; a LinkedAgent when ``more_relays`` names more, or
    a URL's host name resolved to several addresses (``addresses``, see addresses.expand)."""
    if settings.more_relays or len(settings.addresses) > 1:
        return LinkedAgent(settings, on_event)
    return Agent(settings, on_event)


@dataclasses.dataclass
class LinkSettings(AgentSettings):
    """One link's settings: the tunnel's, but one relay URL, and the ``links`` option."""

    def options(self) -> dict[str, object]:
        return {**super().options(), "links": True}


class _Link(Agent):
    """One link: an Agent whose name and resume token are its tunnel's (shared by all)."""

    def __init__(self, owner: LinkedAgent, settings: LinkSettings) -> None:
        self.owner = owner
        self.requests = 0  # exchanges carried by this link (which link serves, for the curious)
        super().__init__(settings, lambda event: owner.link_event(self, event))
        self.local_ssl = owner.local_ssl

    @property
    def label(self) -> str:
        """Which link this is: its relay URL, and the address it dials if the URL has several."""
        s = self.settings
        return f"{s.relay} ({s.address})" if s.address else s.relay

    def record(self, record: RequestRecord) -> None:
        self.requests += 1
        self.owner.on_event(record)

    @property
    def name(self) -> str:
        return self.owner.name

    @name.setter
    def name(self, value: str) -> None:
        self.owner.name = value

    @property
    def resume(self) -> str:
        return self.owner.resume

    @resume.setter
    def resume(self, value: str) -> None:
        self.owner.resume = value

    async def _connect(self) -> tuple[AgentLink, p.Welcome]:
        if self.owner.up:  # the tunnel is online: this link joins it with its resume token
            return await super()._connect()
        # No link up: one link at a time (re)founds the tunnel, so that two links racing do not
        # each get a name, or a fresh resume token the other does not know (the name expired).
        async with self.owner.founding:
            return await super()._connect()


class LinkedAgent:
    """Keeps one tunnel up through every URL of ``settings.relay`` + ``settings.more_relays``
    (every (URL, address) of ``settings.addresses`` when set); it looks like an :class:`Agent`
    to its callers (run, stop, events, name, url, state)."""

    def __init__(
        self, settings: AgentSettings, on_event: Callable[[AgentEvent], None] = lambda e: None
    ) -> None:
        urls = [settings.relay, *(u for u in settings.more_relays if u != settings.relay)]
        ends = list(settings.addresses) or [(url, "") for url in urls]
        if settings.protocol == "tcp":
            raise ValueError("a TCP tunnel has one link: give --relay once")
        self.settings = settings
        self.on_event = on_event
        self.name = settings.name
        self.resume = settings.resume
        self.url = ""
        self.last_error = ""
        self.founding = asyncio.Lock()
        self.local_ssl = settings.local_ssl()
        self.tcp = TcpLedger()
        self.links = [
            _Link(self, LinkSettings(**_fields(settings, relay=url, address=address, **_ONE)))
            for url, address in ends
        ]
        self._online = asyncio.Event()
        self._ever_online = False
        self._stopping = False
        self._down: set[_Link] = set()  # links that were up and went down, not yet back
        self._gave_up: set[_Link] = set()  # links whose first connection gave up once

    # -- what callers of an Agent read ---------------------------------------------------------

    @property
    def up(self) -> list[_Link]:
        return [link for link in self.links if link.state == "online"]

    @property
    def state(self) -> str:
        if self.up:
            return "online"
        if self._stopping:
            return "stopped"
        return "reconnecting" if self._ever_online else "connecting"

    @property
    def link(self) -> AgentLink | None:
        up = self.up
        return up[0].link if up else None

    @property
    def rtt(self) -> float | None:
        link = self.link
        return link.rtt if link is not None else None

    def record(self, record: RequestRecord) -> None:
        self.on_event(record)

    async def wait_online(self) -> None:
        await self._online.wait()

    # -- running -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run every link until stopped; raises Refused if the tunnel is refused for good (no
        link up to vouch for it), Unreachable if no link ever came online in time."""
        tasks = [asyncio.create_task(self._keep(link)) for link in self.links]
        failed: list[asyncio.Task[None]] = []
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            failed = [t for t in done if not t.cancelled() and t.exception() is not None]
            if failed and not self._stopping:
                exc = failed[0].exception()
                assert exc is not None
                if isinstance(exc, Refused):
                    self.last_error = exc.message
                    self.on_event(TunnelRefused(self.name, exc.code, exc.message))
                raise exc
        finally:
            for link in self.links:
                link.stop()
            await asyncio.wait(tasks, timeout=3.0)
            for task in tasks:
                if not task.done():
                    task.cancel()
            self._online.clear()
            if not failed:
                self.on_event(TunnelClosed(self.name, "stopped"))

    async def _keep(self, link: _Link) -> None:
        """Run one link; a refusal or a give-up that another link makes moot is retried."""
        while not self._stopping:
            try:
                await link.run()
                return
            except Refused as exc:
                if self._stopping:
                    return
                others = any(other is not link for other in self.up)
                if exc.code not in SIBLING_REFUSALS or not (others or exc.code == "link_here"):
                    raise
                self._link_down(link, f"the relay says: {exc.message}")
                await self._pause(link, link.settings.backoff_max)
            except Unreachable:
                if self._stopping:
                    return
                if not self._ever_online and not self._others_trying(link):
                    raise
                # Another link is up or may still come up: this one keeps trying, without a
                # limit; the tunnel gives up when every link has (--connect-timeout).
                link.settings.give_up_after = None
                self._gave_up.add(link)
                await self._pause(link, link.settings.backoff_max)

    def _others_trying(self, link: _Link) -> bool:
        return any(other is not link and other not in self._gave_up for other in self.links)

    async def _pause(self, link: _Link, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(link._stop_requested.wait(), delay)

    def stop(self) -> None:
        """Close every link (each says GOAWAY: the cluster frees the name); run() returns."""
        self._stopping = True
        for link in self.links:
            link.stop()

    # -- the links' events, as the tunnel's ------------------------------------------------

    def link_event(self, link: _Link, event: AgentEvent) -> None:
        if type(event) is RequestRecord or type(event) is ConnectionRecord:
            self.on_event(event)
        elif isinstance(event, TunnelOpen | Reconnected):
            self._link_up(link, event.url)
        elif isinstance(event, Reconnecting):
            self._link_down(link, event.reason, event)
        # TunnelRefused, TunnelClosed: the tunnel's own are reported by run()

    def _link_up(self, link: _Link, url: str) -> None:
        self._down.discard(link)
        first = len(self.up) == 1
        self.url = url
        if first:
            self._online.set()
            if self._ever_online:
                self.on_event(Reconnected(self.name, url, 0))
            else:
                self.on_event(TunnelOpen(self.name, url, self.settings.local))
        self._ever_online = True
        up = len(self.up)
        self.on_event(LinkChanged(self.name, link.label, True, "", up, len(self.links)))

    def _link_down(self, link: _Link, reason: str, event: Reconnecting | None = None) -> None:
        up = len(self.up)
        if not up:
            self._online.clear()
            if event is not None:
                self.last_error = reason
                self.on_event(Reconnecting(self.name, reason, event.attempt, event.delay))
        if self._ever_online and link not in self._down:
            self._down.add(link)
            self.on_event(LinkChanged(self.name, link.label, False, reason, up, len(self.links)))


AnyAgent = Agent | LinkedAgent


def links_summary(agent: AnyAgent) -> str:
    """A tunnel's links in a few words ("1/2 links up; down: ws://b:7000"), "" for one link."""
    if not isinstance(agent, LinkedAgent):
        return ""
    up = agent.up
    text = f"{len(up)}/{len(agent.links)} links up"
    down = [link.label for link in agent.links if link not in up]
    return f"{text}; down: {', '.join(down)}" if down and up else text


_ONE: dict[str, Any] = {"more_relays": (), "addresses": ()}  # a link's settings: one end


def _fields(settings: AgentSettings, **changes: Any) -> dict[str, Any]:
    values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    return {**values, **changes}
