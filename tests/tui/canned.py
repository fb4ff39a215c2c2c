"""A dashboard with fixed data: the tunnel thread is replaced by a host that hands the app one
fixed batch of records and statuses, so what it shows depends on nothing but the code."""

from __future__ import annotations

from profiles.model import Profile, ProfilesFile
from profiles.store import save
from relay.events import Capture, RequestRecord
from relay.host import HostUpdate, TunnelHost, TunnelStatus
from relay.stats import TunnelStats
from tui.app import MolehillApp

T0 = 1_795_550_000.0  # a fixed wall-clock time


def canned_records() -> list[RequestRecord]:
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
                app_ttfb_ms=ms * 0.75,
                app_ms=ms * 0.95,
                overhead_ms=ms * 0.05,
            )
        )
    return out


class CannedHost(TunnelHost):
    """A host with fixed figures: no thread, no sockets."""

    def start(self, timeout: float = 10.0) -> None:
        self.relay_url = "wss://relay.example.net"
        records = canned_records()
        stats = TunnelStats()
        for i, r in enumerate(records):
            stats.add(r, now=980.0 + i)  # one request a second: the chart has a shape
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


def canned_profiles(path) -> None:
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
