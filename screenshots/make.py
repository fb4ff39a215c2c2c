"""Regenerate the dashboard screenshots (SVG) from a real loopback run.

    python screenshots/make.py

Starts the demo apps, the dashboard with its embedded relay and tunnels to both apps, sends
real traffic through the tunnels, and saves: main view, request details, profile form, help.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from profiles.model import Profile, ProfilesFile  # noqa: E402
from profiles.store import save  # noqa: E402
from relay.server import RelaySettings  # noqa: E402
from tui.app import MolehillApp  # noqa: E402
from tui.demo import DemoServices  # noqa: E402
from tui.widgets.request_log import RequestLog  # noqa: E402

SIZE = (130, 38)
TRAFFIC = [
    ("frontend", "GET", "/"),
    ("frontend", "GET", "/style.css"),
    ("frontend", "GET", "/app.js"),
    ("api", "GET", "/api/time"),
    ("api", "GET", "/api/items"),
    ("api", "GET", "/api/items?page=2"),
    ("api", "GET", "/api/slow"),
    ("frontend", "GET", "/favicon.ico"),
    ("api", "GET", "/api/error"),
    ("api", "GET", "/api/items"),
]


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def wait_for(pilot, condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise RuntimeError("the dashboard did not reach the expected state")


async def main() -> None:
    services = DemoServices(api_name="api")
    services.start()
    folder = Path(tempfile.mkdtemp(prefix="molehill-shots-"))
    path = folder / "profiles.toml"
    save(
        ProfilesFile(
            profiles={
                "frontend": Profile("frontend", services.frontend_port, autostart=True),
                "api": Profile("api", services.api_port, autostart=True),
                "docs": Profile("docs", 4000),
            }
        ),
        path,
    )
    # The default ports, so the screenshots show the URLs a user sees (stop any relay on them).
    for port in (8080, 7000):
        if not port_free(port):
            raise SystemExit(f"port {port} is taken: stop what listens there, then run me again")
    app = MolehillApp(path, relay_settings=RelaySettings(http_port=8080, agents_port=7000))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(
                pilot,
                lambda: all(
                    app.statuses.get(n) and app.statuses[n].state == "online"
                    for n in ("frontend", "api")
                ),
            )
            assert app.host is not None and app.host.embedded is not None
            port = app.host.embedded.http_port
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                for _ in range(3):
                    for name, method, target in TRAFFIC:
                        host = {"Host": f"{name}.localhost:{port}"}
                        if method == "POST":
                            await client.post(target, json={"name": "pickaxe"}, headers=host)
                        else:
                            await client.get(target, headers=host)
            await pilot.pause(0.6)
            app.query_one("#sidebar").highlighted = 2  # the api tunnel
            await pilot.pause(0.6)
            app.save_screenshot("dashboard.svg", str(ROOT))
            log = app.query_one(RequestLog)
            log.focus()
            posts = [i for i, (_, r) in enumerate(log.rows) if r.method == "GET"]
            log.cursor = posts[-1]
            await pilot.press("enter")
            await pilot.pause(0.3)
            app.save_screenshot("request-details.svg", str(ROOT))
            await pilot.press("escape")
            await pilot.press("e")
            await pilot.pause(0.3)
            app.save_screenshot("profile-form.svg", str(ROOT))
            await pilot.press("escape")
            await pilot.press("question_mark")
            await pilot.pause(0.3)
            app.save_screenshot("help.svg", str(ROOT))
    finally:
        services.stop()
    for name in ("dashboard", "request-details", "profile-form", "help"):
        print(ROOT / f"{name}.svg")


if __name__ == "__main__":
    asyncio.run(main())
