"""Helpers for driving the dashboard with Textual's pilot against a real embedded relay."""

from __future__ import annotations

import asyncio

import httpx

from relay.server import RelaySettings
from tui.app import MolehillApp
from tui.widgets.request_log import RequestLog


def make_app(path, **kwargs) -> MolehillApp:
    return MolehillApp(path, relay_settings=RelaySettings(http_port=0, agents_port=0), **kwargs)


async def wait_for(pilot, condition, timeout=10.0):
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not met in time")


async def wait_online(pilot, app, *names) -> None:
    await wait_for(
        pilot,
        lambda: all(app.statuses.get(n) and app.statuses[n].state == "online" for n in names),
    )


async def burst(app, name: str, paths, concurrency: int = 26) -> None:
    """Send GET requests for ``paths`` through the tunnel ``name``, all at once."""
    port = app.host.embedded.http_port
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:
        headers = {"Host": f"{name}.localhost:{port}"}
        answers = await asyncio.gather(*(client.get(p, headers=headers) for p in paths))
    assert all(a.status_code == 200 for a in answers)


def visible_lines(log: RequestLog) -> list[str]:
    """The text of the log's lines as drawn now: the header, then the rows in view."""
    height = log.scrollable_content_region.height
    return [log.render_line(y).text.rstrip() for y in range(height)]


def shows_path(log: RequestLog, path: str) -> bool:
    return any(line.endswith(f" {path}") for line in visible_lines(log)[1:])


async def canned_ready(pilot) -> None:
    """The canned app (canned.py) shows its 21 requests and its footer."""
    from textual.widgets._footer import FooterKey

    app = pilot.app
    await wait_for(pilot, lambda: len(app.query_one(RequestLog).rows) == 21)
    await wait_for(pilot, lambda: app.screen.query(FooterKey))
    await pilot.pause(0.1)
