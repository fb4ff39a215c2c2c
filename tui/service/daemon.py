"""The service process: the tunnels, the capture store writer, the local API and the control
socket, until SIGTERM (or a ``shutdown`` request). SIGHUP re-reads the profiles file."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from typing import Any

from inspector import CaptureSettings
from profiles.errors import ProfilesError
from profiles.model import Profile
from profiles.store import LoadedProfiles, load
from relay.agent import DEFAULT_RELAY
from relay.events import Reconnecting, TunnelClosed, TunnelOpen, TunnelRefused
from relay.host import PUBLISH_EVERY, HostUpdate, TunnelHost, TunnelStatus
from relay.server import RelaySettings
from runner.hosted import HostedApps
from tui.dashboard_api import DashboardApi
from tui.dashboard_captures import DashboardCaptures
from tui.local_api import ApiOptions
from tui.service.control import Client, ControlServer
from tui.service.feed import feed_messages
from tui.service.forms import pack
from tui.service.paths import ServicePaths
from tui.service.pidlock import PidLock
from tui.service.reload import Plan, plan_reload
from tui.service.requests import Requests
from tui.service.tunnels import agent_settings, api_tunnels

log = logging.getLogger("molehill.service")

BODY_SHARE = 64 * 1024  # body bytes per record in the feed: what the dashboard's log keeps


class Service:
    """One profiles file's tunnels, run until stopped; ``run()`` returns the exit code.
    ``api``: where the local API listens (None: nowhere); ``captures`` None: the defaults."""

    def __init__(
        self,
        paths: ServicePaths,
        api: ApiOptions | None,
        captures: CaptureSettings | None = None,
        relay_settings: RelaySettings | None = None,
        allowed_uid: int | None = None,
    ) -> None:
        self.paths = paths
        self.lock = PidLock(paths)
        self.captures = DashboardCaptures(captures if captures is not None else CaptureSettings())
        self.api = DashboardApi(api, self.captures, self._api_tunnels)
        self.relay_settings = relay_settings
        self.control = ControlServer(paths.socket, Requests(self).answer, allowed_uid)
        self.loaded: LoadedProfiles | None = None
        self.host: TunnelHost | None = None
        self.apps: HostedApps | None = None
        self.started = time.time()
        self.statuses: dict[str, TunnelStatus] = {}
        self.running: set[str] = set()  # tunnels started and not stopped
        self.online_since: dict[str, float] = {}
        self.errors: dict[str, int] = {}  # 5xx and exchanges with no response, per tunnel
        self.stopping = asyncio.Event()
        self._sent_statuses: dict[str, TunnelStatus] = {}  # as last sent to dashboards

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> int:
        self.lock.acquire()  # raises AlreadyRunning: before anything is opened
        try:
            return await self._run()
        finally:
            self.lock.release()

    async def _run(self) -> int:
        try:
            self.loaded = load(self.paths.profiles)
        except ProfilesError as exc:
            log.error("cannot start: %s", exc)
            return 2
        self.captures.open()
        if self.captures.problem:
            log.warning("%s", self.captures.problem)
        relay = self.loaded.file.relay
        self.host = TunnelHost(
            relay.url,
            relay.token or os.environ.get("MOLEHILL_TOKEN", ""),
            embedded=self.relay_settings,
            capture_bytes=self.captures.body_bytes(BODY_SHARE),
            look_for_relay=None if self.relay_settings else DEFAULT_RELAY,
            record_sink=self.captures.sink,
        )
        self.apps = HostedApps(
            self.host, self._profiles, self.paths.profiles.parent, self._settings
        )
        try:
            await asyncio.to_thread(self.host.start)
        except OSError as exc:
            log.error("cannot start the embedded relay: %s", exc)
            self.captures.close()
            return 1
        log.info("relay: %s", self.host.relay_url + (" (embedded)" if self.host.embedded else ""))
        if self.host.relay_note:
            log.warning("%s", self.host.relay_note)
        await self.api.start()
        if self.api.problem:
            log.warning("%s", self.api.problem)
        elif self.api.url:
            log.info("local API at %s", self.api.url)
        await self.control.start()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_on_signal)
        log.info("service pid %d listening on %s", os.getpid(), self.paths.socket)
        for profile in self.loaded.file.autostart_profiles():
            self.start(profile.name)
        publisher = asyncio.create_task(self._publish_forever())
        await self.stopping.wait()
        log.info("stopping: tunnels close (GOAWAY), then the store")
        publisher.cancel()
        await self.control.close()
        await asyncio.to_thread(self.host.stop)
        self._publish()  # the last records reach the log lines
        self.api.close()
        await asyncio.to_thread(self.captures.close)
        log.info("stopped")
        return 0

    def _reload_on_signal(self) -> None:
        outcome = self.reload()
        log.info("SIGHUP: %s", outcome.get("error") or "profiles re-read")

    # -- tunnels ---------------------------------------------------------------------------

    def _profiles(self) -> dict[str, Profile]:
        return dict(self.loaded.file.profiles) if self.loaded is not None else {}

    def profile(self, name: str) -> Profile | None:
        return self._profiles().get(name)

    def _settings(self, profile: Profile, takeover: bool = False) -> Any:
        self.captures.track(profile, profile.local_url)
        return agent_settings(profile, takeover)

    def adopt(self, key: str) -> None:
        """A dashboard starts ``key`` with settings of its own: a profile it has just added or
        edited, and saved. Take that one profile from the file (the others wait for a reload,
        which would otherwise restart this tunnel a second time for the same change)."""
        assert self.loaded is not None
        try:
            on_disk = load(self.paths.profiles).file.profiles.get(key)
        except ProfilesError:
            return
        file = self.loaded.file
        if on_disk is None or on_disk == file.profiles.get(key):
            return
        file = file.with_replaced(on_disk) if key in file.profiles else file.with_added(on_disk)
        self.loaded = self.loaded.with_file(file)

    def start(self, key: str, settings: Any = None) -> str:
        """Start ``key``'s tunnel (with ``settings``, else its profile's); '' or why not."""
        assert self.host is not None
        if settings is not None:
            self.adopt(key)
        profile = self.profile(key)
        if profile is not None:
            self.captures.track(profile, profile.local_url)
        if settings is None:
            if profile is None:
                return f"no profile named {key!r} in {self.paths.profiles}"
            settings = agent_settings(profile)
        self.host.start_tunnel(key, settings)
        self.running.add(key)
        return ""

    def stop(self, key: str) -> None:
        assert self.host is not None
        self.host.stop_tunnel(key)
        self.running.discard(key)
        self.online_since.pop(key, None)

    def restart(self, old: str, key: str, settings: Any = None) -> str:
        assert self.host is not None
        if settings is not None:
            self.adopt(key)
        profile = self.profile(key)
        if settings is None:
            if profile is None:
                return f"no profile named {key!r} in {self.paths.profiles}"
            settings = agent_settings(profile)
        if profile is not None:
            self.captures.track(profile, profile.local_url)
        self.running.discard(old)
        self.online_since.pop(old, None)
        self.host.restart_tunnel(old, key, settings)
        self.running.add(key)
        return ""

    def reload(self) -> dict[str, Any]:
        """Re-read the profiles file; a broken file changes nothing and says why."""
        try:
            loaded = load(self.paths.profiles)
        except ProfilesError as exc:
            log.warning("reload refused, tunnels left as they are: %s", exc)
            return {"ok": False, "error": str(exc)}
        assert self.loaded is not None
        plan: Plan = plan_reload(self.loaded.file, loaded.file, self.running)
        self.loaded = loaded
        for name in plan.stopped:
            self.stop(name)
        for name in plan.restarted:
            self.restart(name, name)
        for name in plan.started:
            self.start(name)
        log.info("reloaded: %s", plan.describe())
        return {"ok": True, **plan.as_dict()}

    # -- the feed ----------------------------------------------------------------------------

    async def _publish_forever(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_EVERY)
            self._publish()

    def _publish(self) -> None:
        assert self.host is not None
        update = self.host.drain()
        self._note(update)
        if not any(c.subscribed for c in self.control.clients):
            return
        if update.statuses == self._sent_statuses:
            update.statuses = {}  # unchanged: an idle service sends nothing at all
        else:
            self._sent_statuses = update.statuses
        self.control.broadcast(feed_messages(update, BODY_SHARE))

    def _note(self, update: HostUpdate) -> None:
        """Keep the figures `status` shows, and log what a user would want to find later."""
        now = time.time()
        for key, records in update.records.items():
            failed = sum(
                1 for r in records if r.status >= 500 or (r.status == 0 and r.method != "TCP")
            )
            if failed:
                self.errors[key] = self.errors.get(key, 0) + failed
        for key, event in update.events:
            if isinstance(event, TunnelOpen):
                log.info("%s online: %s -> %s", key, event.url, event.local)
            elif isinstance(event, TunnelRefused):
                log.warning("%s refused by the relay: %s", key, event.message)
            elif isinstance(event, Reconnecting) and event.attempt == 1:
                log.warning("%s reconnecting: %s", key, event.reason)
            elif isinstance(event, TunnelClosed):
                log.info("%s closed: %s", key, event.reason)
        for key, status in update.statuses.items():
            if status.state == "online":
                self.online_since.setdefault(key, now)
            else:
                self.online_since.pop(key, None)
        self.statuses = update.statuses

    # -- what clients are told ----------------------------------------------------------------

    def relay_description(self) -> dict[str, Any]:
        host = self.host
        assert host is not None
        embedded = host.embedded
        return {
            "url": host.relay_url,  # the first of "urls": what clients read before there were more
            "urls": [host.relay_url, *host.more_relays],  # a link through each
            "found": host.found is not None,
            "embedded": None
            if embedded is None
            else {"public": embedded.public_url("NAME"), "agents_port": embedded.agents_port},
            "note": host.relay_note,
            "token": bool(host.token),
        }

    def hello(self, client: Client, subscribe: bool) -> dict[str, Any]:
        client.subscribed = subscribe
        return {
            "ok": True,
            "pid": os.getpid(),
            "profiles": str(self.paths.profiles),
            "log": str(self.paths.log),
            "relay": self.relay_description(),
            "api": self.api.url,
            "statuses": pack(self.statuses),
        }

    def status(self) -> dict[str, Any]:
        now = time.time()
        urls = self.relay_description()["urls"]
        names = list(self._profiles())
        names += [key for key in self.statuses if key not in names]
        tunnels = []
        for name in names:
            status = self.statuses.get(name)
            since = self.online_since.get(name)
            tunnels.append(
                {
                    "name": name,
                    "state": status.state
                    if status
                    else ("starting" if name in self.running else "stopped"),
                    "url": status.url if status else "",
                    "local": status.local if status else "",
                    "uptime": round(now - since, 1) if since is not None else None,
                    "requests": status.stats.total_requests if status else 0,
                    "errors": self.errors.get(name, 0),
                    "error": status.error if status else "",
                    "links": status.links if status else "",  # several nodes: how many up
                }
            )
        return {
            "ok": True,
            "pid": os.getpid(),
            "uptime": round(now - self.started, 1),
            "profiles": str(self.paths.profiles),
            "socket": str(self.paths.socket),
            "log": str(self.paths.log),
            "api": self.api.url,
            "relay": ", ".join(urls),
            "relay_urls": urls,  # the same as a list, for scripts
            "attached": sum(1 for c in self.control.clients if c.subscribed),  # dashboards
            "tunnels": tunnels,
        }

    def _api_tunnels(self) -> list:
        return api_tunnels(self.statuses, self.profile)
