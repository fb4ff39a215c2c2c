"""Profiles' commands run next to a TunnelHost's tunnels: started with them, told their URLs,
stopped with them; the UI thread reads states and output, and asks for restarts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from profiles.model import Profile
from profiles.refs import depends_on
from relay.agent import AgentSettings
from relay.host import TunnelHost
from runner.apps import AppRunner
from runner.state import EXITED, STOPPED, AppState

ProfilesSource = Callable[[], dict[str, Profile]]


class HostedApps:
    """The glue between a TunnelHost (its hooks, its thread) and an AppRunner on that thread."""

    def __init__(
        self,
        host: TunnelHost,
        profiles: ProfilesSource,
        base_dir: Path,
        settings_for: Callable[[Profile], AgentSettings] | None = None,
    ) -> None:
        """``settings_for``: how the front end makes a profile's tunnel settings, to start the
        tunnels a starting profile refers to (without it, its command waits for them)."""
        self.host = host
        self.profiles = profiles  # read on each start: an edited profile's command is used
        self.settings_for = settings_for
        self._started: set[str] = set()  # tunnels started and not stopped (tunnel thread)
        self.runner = AppRunner([], base_dir, self._changed)
        self._lock = threading.Lock()
        self._states: dict[str, AppState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        host.on_tunnel_start = self._tunnel_started
        host.on_tunnel_stop = self._tunnel_stopped
        host.on_tunnel_url = self._tunnel_url
        host.on_shutdown = self.runner.close
        host.describe_app = self.describe
        # Quitting waits for each command's grace period, so SIGKILL is sent before exit.
        grace = [p.stop_grace for p in profiles().values() if p.command is not None]
        host.shutdown_grace = max(grace, default=0.0) + 1.0

    # -- UI thread -------------------------------------------------------------------------

    def state(self, name: str) -> AppState | None:
        """The state of `name`'s command; None when the profile runs none."""
        with self._lock:
            return self._states.get(name)

    def describe(self, name: str) -> str:
        """A short line for the sidebar: "ready since 12:03:04", "waiting for backend"."""
        profile = self.profiles().get(name)
        if profile is None or profile.command is None:
            return ""
        state = self.state(name)
        if (state is None or state.state == STOPPED) and name in self.runner.apps:
            waiting = self.runner.waiting_for(name)
            if waiting:
                return f"app waits for {', '.join(waiting)}"
        if state is None:
            return "app not started"
        since = time.strftime("%H:%M:%S", time.localtime(state.since))
        if state.state == EXITED:  # "app exited with status 1 at 12:03:04"
            return f"app {state.detail} at {since}"
        word = state.state if state.state.startswith("app") else f"app {state.state}"
        detail = f": {state.detail}" if state.detail and state.state != "starting" else ""
        return f"{word} since {since}{detail}"

    def lines(self, name: str) -> list[str]:
        """The command's recent output (a copy), oldest first."""
        app = self.runner.apps.get(name)
        return list(app.output.lines) if app is not None else []

    def restart(self, name: str) -> str | None:
        """Restart `name`'s command; why it cannot be, or None."""
        profile = self.profiles().get(name)
        if profile is None or profile.command is None:
            return f'profile {name} runs no command; add command = "..." to run one'
        self.host.submit(self._restart(profile))
        return None

    # -- tunnel thread ---------------------------------------------------------------------

    def _changed(self, name: str, state: AppState) -> None:
        with self._lock:
            self._states[name] = state

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _restart(self, profile: Profile) -> None:
        await self._refresh(profile)
        await self.runner.restart(profile.name)

    async def _refresh(self, profile: Profile) -> None:
        """Take the profile as it is now (an edit may have changed its command or env)."""
        old = self.runner.profiles.get(profile.name)
        if old == profile and profile.name in self.runner.apps:
            return
        if profile.name in self.runner.apps:
            await self.runner.stop(profile.name)
        self.runner.set_profile(profile)
        self.host.shutdown_grace = max(self.host.shutdown_grace, profile.stop_grace + 1.0)

    def _tunnel_started(self, key: str) -> None:
        self._started.add(key)
        profile = self.profiles().get(key)
        if profile is None:
            return
        for other in depends_on(profile.env):  # the tunnels whose URLs it needs, first
            needed = self.profiles().get(other)
            if needed is not None and other not in self._started and self.settings_for:
                self.host.start_tunnel(other, self.settings_for(needed))
        if profile.command is not None:
            self._spawn(self._start(profile))

    async def _start(self, profile: Profile) -> None:
        await self._refresh(profile)
        await self.runner.start(profile.name)

    def _tunnel_stopped(self, key: str) -> None:
        self._started.discard(key)
        if key in self.runner.apps:
            self._spawn(self.runner.stop(key))

    def _tunnel_url(self, key: str, url: str) -> None:
        self._spawn(self.runner.tunnel_url(key, url))
