"""The commands of a set of profiles: started in reference order, restarted when a URL changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path

from profiles.model import Profile
from profiles.refs import depends_on, start_order
from runner.state import AppState
from runner.supervisor import CHECK_EVERY, AppProcess
from runner.wiring import missing, resolve

Listener = Callable[[str, AppState], None]


class AppRunner:
    """Owns an AppProcess per profile with a command; lives on one asyncio loop.

    A profile whose [env] refers to other profiles' URLs waits until those tunnels are online,
    and is restarted when one of those URLs changes (an edited subdomain, another relay).
    """

    def __init__(
        self,
        profiles: Iterable[Profile],
        base_dir: Path,
        on_change: Listener | None = None,
        check_every: float = CHECK_EVERY,
    ) -> None:
        self.profiles: dict[str, Profile] = {}
        self.base_dir = base_dir
        self.on_change = on_change
        self.check_every = check_every
        self.urls: dict[str, str] = {}
        self.apps: dict[str, AppProcess] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.wanted: set[str] = set()  # started, and not stopped since: follow their URLs
        self._closed = False
        for profile in profiles:
            self.set_profile(profile)

    def set_profile(self, profile: Profile) -> None:
        """Add or replace a profile (its old command must be stopped first)."""
        self.profiles[profile.name] = profile
        self._locks.setdefault(profile.name, asyncio.Lock())
        if profile.command is not None:
            self.apps[profile.name] = self._process(profile, self.check_every)
        else:
            self.apps.pop(profile.name, None)

    def _process(self, profile: Profile, check_every: float) -> AppProcess:
        assert profile.command is not None
        cwd = Path(profile.cwd).expanduser() if profile.cwd else Path(".")
        return AppProcess(
            profile.name,
            profile.command,
            self.base_dir / cwd,
            host=profile.host,
            port=profile.port,
            health=profile.health,
            tls=profile.tls,
            stop_grace=profile.stop_grace,
            on_change=self._changed,
            check_every=check_every,
        )

    def _changed(self, name: str, state: AppState) -> None:
        if self.on_change is not None:
            self.on_change(name, state)

    def waiting_for(self, name: str) -> list[str]:
        """The profiles whose tunnels `name`'s command waits for (their URLs are unknown)."""
        return missing(self.profiles[name].env, self.urls)

    async def start_all(self) -> None:
        """Start every command whose references are known, dependencies first."""
        graph = {n: depends_on(p.env) for n, p in self.profiles.items()}
        for name in start_order(graph):
            if name in self.apps:
                self.wanted.add(name)
                await self._sync(name)

    async def start(self, name: str) -> None:
        """Start `name`'s command if the URLs it refers to are known (else when they are)."""
        self.wanted.add(name)
        await self._sync(name)

    async def tunnel_url(self, profile: str, url: str) -> None:
        """A tunnel is online at `url`: start or restart the commands that refer to it."""
        if self.urls.get(profile) == url:
            return
        self.urls[profile] = url
        for name, other in list(self.profiles.items()):
            if name in self.apps and profile in depends_on(other.env):
                await self._sync(name)

    async def _sync(self, name: str) -> None:
        async with self._locks[name]:
            app = self.apps[name]
            if self._closed or name not in self.wanted or self.waiting_for(name):
                return
            env = resolve(self.profiles[name].env, self.urls)
            if app.env == env and app.running:
                return
            if app.env is not None and app.env != env and app.running:
                app.output.note("a URL it refers to changed: restarting")
            await app.start(env)

    async def restart(self, name: str) -> None:
        """Restart `name`'s command with its current environment (on demand: `R`)."""
        self.wanted.add(name)
        async with self._locks[name]:
            if self._closed or self.waiting_for(name):
                return
            await self.apps[name].start(resolve(self.profiles[name].env, self.urls))

    async def stop(self, name: str) -> None:
        self.wanted.discard(name)
        async with self._locks[name]:
            await self.apps[name].stop()

    async def close(self) -> None:
        """Stop every command (each with its own grace period, all at once)."""
        self._closed = True
        await asyncio.gather(*(self.stop(name) for name in list(self.apps)))
