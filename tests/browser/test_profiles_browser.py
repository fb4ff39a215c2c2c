"""The README's frontend + backend example in a real browser: `molehill start frontend` starts
both commands and both tunnels; Chromium opens the frontend at its public URL, and the page's
fetch() reaches the backend through the backend's own tunnel, at the URL molehill wired into the
frontend's environment."""

from __future__ import annotations

import json

from runner.output import LOGS_ENV
from tests.apps_run.test_start_apps import _app_events, _profiles
from tests.browser.test_browser import CHROMIUM, CHROMIUM_ARGS, need_browser
from tests.support.cli import molehill_process


async def test_the_frontend_page_calls_the_backend_through_its_tunnel(tmp_path):
    need_browser()
    from playwright.async_api import async_playwright

    profiles, _, _ = _profiles(tmp_path)
    async with (
        molehill_process(
            "start", "frontend", "--profiles", profiles, "--http", "127.0.0.1:0", "--json",
            "--no-api", "--no-capture", env={LOGS_ENV: str(tmp_path / "logs")},
        ) as run,
        async_playwright() as playwright,
    ):  # fmt: skip
        port = json.loads(await run.line())["url"].rsplit(":", 1)[1]
        await _app_events(run, {"backend": "ready", "frontend": "ready"})
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page()
            response = await page.goto(f"http://frontend.localhost:{port}/page", timeout=30_000)
            assert response is not None and response.status == 200
            await page.wait_for_function("window.result !== undefined", timeout=30_000)
            result = await page.evaluate("window.result")
        finally:
            await browser.close()
        assert await run.terminate() == 0
    assert result == {
        "status": 200,
        "body": {"hello": "from the backend", "host": f"backend.localhost:{port}"},
    }
