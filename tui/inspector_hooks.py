"""The dashboard's side of the inspector: captures from its tunnels, history when it opens,
replays in the log, and the local API with its profiles' tunnels."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from heapq import merge
from itertools import repeat

from inspector import CaptureSettings, StoreError
from inspector.api import TunnelInfo
from profiles.model import Profile
from tui.dashboard_api import DashboardApi
from tui.dashboard_captures import DashboardCaptures
from tui.local_api import ApiOptions
from tui.name_holds import NameHolds
from tui.replays import ReplayDone, Replayer
from tui.screens.details import RequestDetailsScreen
from tui.service.remote import RemoteHost
from tui.widgets.request_log import RequestLog, Row
from tui.widgets.tunnel_list import ALL


class InspectorHooks(NameHolds):
    """Mixed into MolehillApp, above NameHolds; uses its ``logs``, ``all_rows``, ``ring_size``.

    The app's ``captures`` (CaptureSettings, None: no captures, `--no-capture`) and ``api``
    (ApiOptions, None: no API, `--no-api`) arguments come here."""

    logs: dict[str, deque[Row]]
    all_rows: deque[Row]
    ring_size: int

    def _set_up_inspector(self, captures: CaptureSettings | None, api: ApiOptions | None) -> None:
        """In __init__: nothing is opened yet."""
        self.captures = DashboardCaptures(captures)
        self.replayer = Replayer(self.captures, self._profile, self._attached_service)
        self.local_api = DashboardApi(api, self.captures, self._api_tunnels)

    def _attached_service(self) -> RemoteHost | None:
        host = getattr(self, "host", None)
        return host if isinstance(host, RemoteHost) else None

    def _open_inspector(self) -> None:
        """Before the tunnels start: the store (or a notice why not), history, the API."""
        self.captures.open()
        if self.captures.problem:
            self.notify(self.captures.problem, severity="warning", timeout=15)
        elif self.captures.writer is not None:
            self._show_history()
        if self.local_api.options is not None:
            self.run_worker(self._serve_api(), group="api")

    def _show_history(self) -> None:
        if self.loaded is None:
            return
        names = list(self.loaded.file.profiles)
        try:
            history = self.captures.history(names, self.ring_size)
        except StoreError as exc:
            self.notify(f"request history could not be read: {exc}", severity="warning")
            return
        for name, records in history.items():
            rows = list(zip(repeat(name), records))
            self.logs.setdefault(name, deque(maxlen=self.ring_size)).extendleft(reversed(rows))
        merged = merge(*(zip(repeat(n), r) for n, r in history.items()), key=lambda r: r[1].time)
        self.all_rows.extendleft(reversed(list(merged)[-self.ring_size :]))
        self.query_one(RequestLog).replace(self._rows())

    async def _serve_api(self) -> None:
        await self.local_api.start()
        if self.local_api.problem:
            self.notify(self.local_api.problem, severity="warning", timeout=15)
        self._show_relay()

    def _api_tunnels(self) -> list[TunnelInfo]:
        """The profiles' tunnels that are online, for /api/tunnels (ngrok's shape)."""
        tunnels = []
        for name, status in self.statuses.items():
            profile = self._profile(name)
            if profile is None or not status.url:
                continue
            secrets = dict(profile.webhook_secrets)
            tunnels.append(
                TunnelInfo(name, status.url, profile.local_url, profile.local_insecure, secrets)
            )
        return tunnels

    def api_note(self) -> str:
        """For the header bar: where the API answers."""
        return f" · API {self.local_api.url}" if self.local_api.url else ""

    def on_request_log_request_chosen(self, event: RequestLog.RequestChosen) -> None:
        replayer = self.replayer if event.record.method != "TCP" else None
        self.push_screen(
            RequestDetailsScreen(event.tunnel, event.record, replayer, self._add_replay)
        )

    def _add_replay(self, done: ReplayDone) -> None:
        """A replay's row joins the logs, after the newest rows."""
        row = (done.tunnel, done.record)
        self.logs.setdefault(done.tunnel, deque(maxlen=self.ring_size)).append(row)
        self.all_rows.append(row)
        if self.selected in (done.tunnel, ALL):
            self.query_one(RequestLog).add([row])

    def _close_inspector(self) -> None:
        self.local_api.close()
        self.captures.close()

    def _rows(self) -> Iterable[Row]:
        raise NotImplementedError

    def _show_relay(self) -> None:
        raise NotImplementedError

    def _profile(self, name: str) -> Profile | None:
        raise NotImplementedError
