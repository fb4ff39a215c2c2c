"""A real browser through a real tunnel: headless Chromium (Debian's, driven by Playwright) opens
``http://browser.localhost:PORT/browser/`` (Chromium resolves ``*.localhost`` to loopback), served
by the test app behind a relay and an agent running in this test.

The page (tests/support/apps.py, BROWSER_*) loads a script and a stylesheet, exchanges WebSocket
messages, receives server-sent events, uploads 3 MB with fetch (the app answers its sha256) and
downloads 5 MB (hashed in the page with crypto.subtle); it leaves what it saw in
``window.results``, and the test checks every part of it.

Needs /usr/bin/chromium (`apt-get install chromium`; .ci/run installs it) and the playwright
package (the test extra). Playwright's own browser download is never used. Without them the test
is skipped, except under CI=true, where it fails.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from relay.events import RequestRecord
from tests.support.apps import (
    BROWSER_DOWNLOAD,
    BROWSER_EVENTS,
    BROWSER_UPLOAD,
    browser_upload_body,
    pattern_sha256,
)
from tests.support.stack import agent_for, running_relay

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def need_browser() -> None:
    """Skip (fail under CI=true) when Chromium or Playwright is missing."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[test]')")
    if missing:
        why = "a real browser test needs " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


async def test_a_page_with_assets_websocket_sse_upload_and_download_through_the_tunnel(app_port):
    need_browser()
    from playwright.async_api import async_playwright

    async with (
        running_relay() as relay,
        agent_for(relay, app_port, "browser") as tunnel,
        async_playwright() as playwright,
    ):
        url = f"http://browser.localhost:{relay.http_port}/browser/"
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            response = await page.goto(url, wait_until="load", timeout=30_000)
            assert response is not None and response.status == 200
            await page.wait_for_function("window.results !== undefined", timeout=60_000)
            results = await page.evaluate("window.results")
        finally:
            await browser.close()

    assert "error" not in results, (results["error"], console)
    assert results["script"] is True
    assert results["css"] == "rgb(1, 2, 3)"  # the stylesheet arrived and applied
    assert results["secure"] is True  # *.localhost is a secure context: crypto.subtle works
    assert results["host"] == f"browser.localhost:{relay.http_port}"

    assert results["websocket"] == [
        "echo: hello 0",
        "echo: hello 1",
        "echo: hello 2",
        [0, 1, 2, 254, 255],
    ]
    assert results["events"] == [
        {"id": str(i), "data": f"event {i}"} for i in range(BROWSER_EVENTS)
    ]

    sent = hashlib.sha256(browser_upload_body()).hexdigest()
    assert results["upload"] == {
        "status": 200,
        "sha256": sent,
        "length": BROWSER_UPLOAD,
        "sent": sent,
    }
    assert results["download"] == {
        "status": 200,
        "length": BROWSER_DOWNLOAD,
        "sha256": pattern_sha256(BROWSER_DOWNLOAD),
    }

    # The agent saw the browser's requests go through the tunnel.
    paths = {e.path for e in tunnel.events if isinstance(e, RequestRecord)}
    assert {"/browser/", "/browser/app.js", "/browser/app.css", "/ws", "/upload"} <= paths
