"""The demo's apps answer every request the demo's traffic makes: no 404 (the favicon) in the
request log every few seconds; only /api/error fails, on purpose."""

from __future__ import annotations

import httpx

from tui.demo import DEMO_TRAFFIC, DemoServices


async def test_every_demo_request_is_answered():
    services = DemoServices()
    services.start()  # relay_port stays 0: no traffic of its own, only ours
    try:
        ports = {"frontend": services.frontend_port, "api": services.api_port}
        async with httpx.AsyncClient(timeout=5) as client:
            for tunnel, method, path in sorted(set(DEMO_TRAFFIC)):
                resp = await client.request(method, f"http://127.0.0.1:{ports[tunnel]}{path}")
                expected = 500 if path == "/api/error" else 200
                assert resp.status_code == expected, (tunnel, path, resp.status_code)
                if path == "/favicon.ico":
                    assert resp.headers["content-type"] == "image/svg+xml"
                    assert resp.content.startswith(b"<svg")
            page = await client.get(f"http://127.0.0.1:{ports['frontend']}/")
            assert 'rel="icon" href="/favicon.ico"' in page.text
    finally:
        services.stop()
