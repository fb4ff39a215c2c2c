"""The molehill dashboard: profiles in a sidebar, the selected tunnel's live log and figures."""

from __future__ import annotations

import gc
import os
from collections import deque
from collections.abc import Callable, Iterable
from itertools import repeat
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.widgets import OptionList

from inspector import CaptureSettings
from profiles.errors import ProfilesError
from profiles.model import Profile
from profiles.store import LoadedProfiles, load
from relay.agent import AgentSettings
from relay.events import Reconnecting, TunnelRefused
from relay.host import TunnelHost, TunnelStatus
from relay.server import RelaySettings
from relay.terminal_text import visible
from tui import app_keys, attach
from tui.dashboard_keys import FOOTER_PRIORITY, DashboardKeys
from tui.inspector_hooks import InspectorHooks
from tui.local_api import ApiOptions
from tui.screens.file_error import ProfilesErrorScreen
from tui.service.remote import RemoteHost
from tui.service.tunnels import agent_settings
from tui.widgets.key_footer import KeyFooter
from tui.widgets.latency_pane import LatencyPane
from tui.widgets.request_log import RequestLog, Row
from tui.widgets.steady_static import SteadyStatic
from tui.widgets.tunnel_info import TunnelInfo
from tui.widgets.tunnel_list import ALL, TunnelList

REFRESH_EVERY = 0.25  # seconds between UI updates from the tunnel thread
BUSY_BATCH = 1000  # records in one update above which the next update is skipped


class MolehillApp(InspectorHooks, DashboardKeys):
    """Run with a profiles path; ``relay_settings`` configures the embedded relay;
    ``look_for_relay``: with no relay in the profiles file, use the molehill relay answering
    at this agents' URL, if any, instead of starting an embedded one (and see InspectorHooks)."""

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere
    TITLE = "molehill"
    # Screens get these classes by size; app.tcss lays small terminals out with them.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]

    def __init__(
        self,
        profiles_path: Path,
        relay_settings: RelaySettings | None = None,
        ring_size: int = 5000,
        autostart: bool = True,
        on_host_started: Callable[[TunnelHost], None] | None = None,
        capture_bytes: int = 64 * 1024,
        look_for_relay: str | None = None,
        captures: CaptureSettings | None = None,
        api: ApiOptions | None = None,
        service: RemoteHost | None = None,
    ) -> None:
        """``service``: a running service to attach to, instead of running the tunnels here."""
        super().__init__()
        self.service = service
        self._set_up_inspector(captures, api)
        self.look_for_relay = look_for_relay
        self.profiles_path = profiles_path
        self.relay_settings = relay_settings
        self.ring_size = ring_size
        self.autostart = autostart
        self.on_host_started = on_host_started
        self.capture_bytes = capture_bytes
        self.loaded: LoadedProfiles | None = None
        self.host: TunnelHost | None = None
        self.apps: app_keys.HostedApps | None = None  # the profiles' commands, beside the host
        self.statuses: dict[str, TunnelStatus] = {}  # as shown (refusals in our words)
        self._host_statuses: dict[str, TunnelStatus] = {}  # as the tunnel thread sent them
        self._skip_refresh = False
        self.logs: dict[str, deque[Row]] = {}
        self.all_rows: deque[Row] = deque(maxlen=ring_size)
        self.selected = ALL
        self._sidebar_signature: tuple[object, ...] = ()

    # -- layout ----------------------------------------------------------------------------

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification as plain text: they carry a relay's refusal, a network error, a
        replay's failure, not words of ours. Read as markup, a ``[/bold]`` in one raised
        MarkupError when its toast was drawn and ended the dashboard with its tunnels."""
        super().notify(
            visible(message, lines=True),
            title=title,
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    def compose(self) -> ComposeResult:
        yield SteadyStatic(id="relay-bar")
        with Horizontal(id="body"):
            yield TunnelList(id="sidebar")
            with Vertical(id="main"):
                yield TunnelInfo(id="tunnel-info")
                yield RequestLog(self.ring_size, id="log")
                yield LatencyPane(id="latency")
        yield KeyFooter(FOOTER_PRIORITY)

    def on_mount(self) -> None:
        # The widgets and the code loaded so far live as long as the app: keep them out of
        # the collector's way, so full collections walk only the request rings.
        gc.freeze()
        self.query_one(TunnelList).border_title = "tunnels"
        self.query_one(LatencyPane).border_title = "latency"
        if not self._load_profiles():
            return
        self._start_host()
        self.set_interval(REFRESH_EVERY, self.refresh_from_host)
        self.set_interval(1.0, self._tick_holds)

    def _load_profiles(self) -> bool:
        try:
            self.loaded = load(self.profiles_path)
        except ProfilesError as exc:
            self.push_screen(
                ProfilesErrorScreen(str(exc), str(self.profiles_path)), self._after_file_error
            )
            return False
        self._refresh_sidebar(force=True)
        self._refresh_main()  # the periodic update redraws only what the tunnels change
        return True

    def _after_file_error(self, reload: bool | None) -> None:
        if reload and self._load_profiles() and self.host is None:
            self._start_host()
            self.set_interval(REFRESH_EVERY, self.refresh_from_host)
            self.set_interval(1.0, self._tick_holds)

    def _start_host(self) -> None:
        assert self.loaded is not None
        if self.service is not None:
            attach.attach(self, self.service)
            return
        self._open_inspector()  # the store first: the tunnels write to it
        relay = self.loaded.file.relay
        token = relay.token or os.environ.get("MOLEHILL_TOKEN", "")
        self.host = TunnelHost(
            relay.url,
            token,
            embedded=self.relay_settings,
            capture_bytes=self.captures.body_bytes(self.capture_bytes),
            look_for_relay=self.look_for_relay,
            record_sink=self.captures.sink,
            message_cap=self.captures.settings.messages_per_connection,
        )
        self.apps = app_keys.attach_apps(self)
        try:
            self.host.start()
        except OSError as exc:
            self.notify(f"cannot start the embedded relay: {exc}", severity="error")
            return
        self._show_relay()
        if self.host.relay_note:
            self.notify(self.host.relay_note, severity="warning", timeout=10)
        if self.on_host_started is not None:
            self.on_host_started(self.host)
        if self.autostart:
            for profile in self.loaded.file.autostart_profiles():
                self._start(profile)

    def _show_relay(self) -> None:
        host = self.host
        if host is None:
            return
        if host.embedded is not None:
            embedded = host.embedded
            where = (
                f"embedded relay · {embedded.public_url('NAME')} · agents :{embedded.agents_port}"
            )
        elif host.found is not None:
            where = f"found relay {host.relay_url}"
        else:
            where = "relay " + ", ".join([host.relay_url, *host.more_relays])  # a link each
        rtts = [s.rtt_ms for s in self.statuses.values() if s.rtt_ms is not None]
        rtt = f" · RTT {min(rtts):.1f} ms" if rtts else ""
        bar = Text()
        bar.append(" molehill ", style="bold reverse")
        bar.append(f"  {where}{rtt}{self.api_note()}")
        self.query_one("#relay-bar", SteadyStatic).show(bar)

    # -- periodic refresh from the tunnel thread -------------------------------------------

    def refresh_from_host(self) -> None:
        if self.host is None or not self.is_running:
            return  # not started, or shutting down: the widgets may be gone already
        if self._skip_refresh:
            # Under heavy traffic the redraw (~10 ms) would run 4 times a second beside the
            # tunnel thread on one core; twice a second still shows the log moving.
            self._skip_refresh = False
            return
        update = self.host.drain()
        self._skip_refresh = sum(map(len, update.records.values())) >= BUSY_BATCH
        if not update.records and not update.events and update.statuses == self._host_statuses:
            return  # nothing to redraw: an idle dashboard should cost (almost) nothing
        log = self.query_one(RequestLog)
        for key, records in update.records.items():
            kept = self.captures.for_log(records, self.capture_bytes)  # bodies: the log's share
            rows = list(zip(repeat(key), kept))  # thousands a second under load
            self.logs.setdefault(key, deque(maxlen=self.ring_size)).extend(rows)
            self.all_rows.extend(rows)
            if self.selected in (key, ALL):
                log.add(rows)
        for key, event in update.events:
            if isinstance(event, TunnelRefused):
                if not self._on_name_refused(key, event):
                    self.notify(f"{key}: {event.message}", severity="error", timeout=8)
            elif isinstance(event, Reconnecting) and event.attempt == 1:
                self.notify(f"{key}: {event.reason}; reconnecting", severity="warning")
        self._host_statuses = update.statuses
        self.statuses = self._in_dashboard_words(update.statuses)
        self._refresh_sidebar()
        self._refresh_main()
        self._show_relay()

    def _refresh_sidebar(self, force: bool = False) -> None:
        entries = self._entries()
        held = self.held_left()
        signature = tuple(
            (name, local, s.state, s.url, s.error, s.app, held.get(name))
            if (s := self.statuses.get(name))
            else (name, local, held.get(name))
            for name, local in entries
        )
        if signature != self._sidebar_signature or force:
            self._sidebar_signature = signature
            self.query_one(TunnelList).set_entries(entries, self.statuses, held)

    def _entries(self) -> list[tuple[str, str]]:
        if self.loaded is None:
            return []
        return [(p.name, p.local_address) for p in self.loaded.file.profiles.values()]

    def _refresh_main(self) -> None:
        info = self.query_one(TunnelInfo)
        pane = self.query_one(LatencyPane)
        if self.loaded is not None and not self.loaded.file.profiles:
            info.show_no_profiles(self.profiles_path)
            pane.show(None)
        elif self.selected == ALL:
            info.show_all(self.statuses)
            pane.show(None, "select a tunnel in the sidebar for its latency")
        else:
            status = self.statuses.get(self.selected)
            info.show_tunnel(self.selected, self._profile(self.selected), status)
            pane.show(status)

    # -- selection -------------------------------------------------------------------------

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        key = event.option.id or ALL
        if key == self.selected or not self.is_running:
            return
        self.selected = key
        log = self.query_one(RequestLog)
        log.show_tunnel = key == ALL
        log.replace(self._rows())
        self._refresh_main()

    def _rows(self) -> Iterable[Row]:
        """Every row kept for the selected sidebar entry, oldest first."""
        return self.all_rows if self.selected == ALL else self.logs.get(self.selected, ())

    def _profile(self, name: str) -> Profile | None:
        if self.loaded is None:
            return None
        return self.loaded.file.profiles.get(name)

    def _selected_profile(self) -> Profile | None:
        profile = self._profile(self.selected)
        if profile is None:
            self.notify("select a profile in the sidebar first", severity="warning")
        return profile

    # -- tunnels ---------------------------------------------------------------------------

    def _settings(self, profile: Profile, takeover: bool = False) -> AgentSettings:
        self.captures.track(profile, profile.local_url)  # every start and restart comes here
        return agent_settings(profile, takeover)

    def _start(self, profile: Profile, takeover: bool = False) -> None:
        if self.host is not None:
            self.host.start_tunnel(profile.name, self._settings(profile, takeover))

    def action_start(self) -> None:
        if (profile := self._selected_profile()) is not None:
            self._forget_hold(profile.name)
            self._start(profile)

    def action_stop(self) -> None:
        if (profile := self._selected_profile()) is not None and self.host is not None:
            self._forget_hold(profile.name)
            self.host.stop_tunnel(profile.name)

    def action_start_all(self) -> None:
        if self.loaded is not None:
            for profile in self.loaded.file.profiles.values():
                self._start(profile)

    def action_restart_app(self) -> None:
        app_keys.restart_app(self)

    def action_app_log(self) -> None:
        app_keys.show_app_log(self)

    def action_stop_all(self) -> None:
        if self.host is not None and self.loaded is not None:
            for name in self.loaded.file.profiles:
                self._forget_hold(name)
                self.host.stop_tunnel(name)

    async def action_quit(self) -> None:
        self.exit()

    def action_quit_all(self) -> None:
        attach.quit_all(self)

    def on_unmount(self) -> None:
        if self.host is not None:
            self.host.stop()
        self._close_inspector()
