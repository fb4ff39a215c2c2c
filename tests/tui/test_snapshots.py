"""Snapshot tests of the main screens with fixed data (pytest-textual-snapshot).

The tunnel thread is replaced by a host that hands the app a fixed batch of records and
statuses, so the pictures depend on nothing but the code. Update them after a deliberate
visual change with: pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import time

import pytest

from profiles.model import Profile, ProfilesFile
from profiles.store import save
from relay.events import Capture, RequestRecord
from relay.host import HostUpdate, TunnelHost, TunnelStatus
from relay.stats import TunnelStats
from tui.app import MolehillApp

SIZE = (130, 38)
T0 = 1_795_550_000.0  # a fixed wall-clock time


def _records() -> list[RequestRecord]:
    shapes = [
        ("GET", "/", 200, 1.8, 1640),
        ("GET", "/assets/app.js", 200, 2.4, 48210),
        ("GET", "/api/items", 200, 12.5, 512),
        ("POST", "/api/items", 201, 18.2, 96),
        ("GET", "/api/items/7", 404, 3.1, 40),
        ("GET", "/api/report", 500, 250.0, 88),
        ("GET", "/favicon.ico", 304, 0.9, 0),
    ]
    out = []
    for i in range(21):
        method, path, status, ms, size = shapes[i % len(shapes)]
        capture = Capture(
            request_head=(
                f"{method} {path} HTTP/1.1\r\nHost: frontend.localhost:8080\r\n"
                "Accept: application/json\r\n\r\n"
            ).encode(),
            response_head=(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                "Content-Length: 27\r\n\r\n"
            ).encode(),
            request_body=b'{"name": "pickaxe"}' if method == "POST" else b"",
            response_body=b'{"id": 7, "name": "pickaxe"}',
        )
        out.append(
            RequestRecord(
                time=T0 + i,
                method=method,
                path=path,
                status=status,
                duration_ms=ms,
                bytes_in=180,
                bytes_out=size,
                client="203.0.113.9",
                stream=i + 1,
                ttfb_ms=ms * 0.8,
                capture=capture,
            )
        )
    return out


class CannedHost(TunnelHost):
    """A host with fixed figures: no thread, no sockets."""

    def start(self, timeout: float = 10.0) -> None:
        self.relay_url = "wss://relay.example.net"
        records = _records()
        stats = TunnelStats()
        for r in records:
            stats.add(r, now=1000.0)
        snapshot = stats.snapshot(now=1000.0)
        self._canned = HostUpdate(
            records={"frontend": records},
            statuses={
                "frontend": TunnelStatus(
                    "frontend",
                    "online",
                    "frontend",
                    "https://frontend.example.net",
                    "127.0.0.1:3000",
                    "",
                    23.4,
                    2,
                    snapshot,
                ),
                "backend": TunnelStatus(
                    "backend",
                    "error",
                    "api",
                    "",
                    "127.0.0.1:8000",
                    "the name 'api' is in use by another agent; choose another --subdomain",
                    None,
                    0,
                    TunnelStats().snapshot(now=1000.0),
                ),
            },
        )

    def drain(self) -> HostUpdate:
        update, self._canned = self._canned, HostUpdate(statuses=self._canned.statuses)
        return update

    def start_tunnel(self, key, settings) -> None:
        pass

    def stop_tunnel(self, key) -> None:
        pass

    def stop(self, timeout: float = 5.0) -> None:
        pass


class CannedApp(MolehillApp):
    def _start_host(self) -> None:
        self.host = CannedHost()
        self.host.start()
        self._show_relay()


@pytest.fixture
def canned_app(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    path = tmp_path / "profiles.toml"
    save(
        ProfilesFile(
            profiles={
                "frontend": Profile("frontend", 3000),
                "backend": Profile("backend", 8000, subdomain="api"),
                "docs": Profile("docs", 4000),
            }
        ),
        path,
    )
    yield CannedApp(path)
    monkeypatch.delenv("TZ")
    time.tzset()


async def _settle(pilot) -> None:
    await pilot.pause(0.4)


def test_main_view(snap_compare, canned_app):
    assert snap_compare(canned_app, terminal_size=SIZE, run_before=_settle)


def test_request_details(snap_compare, canned_app):
    async def open_details(pilot) -> None:
        await _settle(pilot)
        log = pilot.app.query_one("#log")
        log.focus()
        log.cursor = 3  # the POST
        await pilot.press("enter")
        await pilot.pause(0.2)

    assert snap_compare(canned_app, terminal_size=SIZE, run_before=open_details)


def test_profile_form(snap_compare, canned_app):
    async def edit(pilot) -> None:
        await _settle(pilot)
        await pilot.press("e")
        await pilot.pause(0.2)

    assert snap_compare(canned_app, terminal_size=SIZE, run_before=edit)


def test_help(snap_compare, canned_app):
    async def help_(pilot) -> None:
        await _settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(canned_app, terminal_size=SIZE, run_before=help_)


def test_error_state_of_a_tunnel(snap_compare, canned_app):
    async def select_backend(pilot) -> None:
        await _settle(pilot)
        pilot.app.query_one("#sidebar").highlighted = 2
        await pilot.pause(0.2)

    assert snap_compare(canned_app, terminal_size=SIZE, run_before=select_backend)
