"""The simplest path: a GET through relay and agent reaches the local app and is logged."""

from __future__ import annotations

import asyncio

import httpx

from tests.support.stack import tunnel_to


async def test_get_through_tunnel_is_answered_and_logged(app_port):
    async with tunnel_to(app_port, "smoke") as t, httpx.AsyncClient(base_url=t.base) as client:
        resp = await client.get("/echo/x?y=1", headers={"Host": t.host})
        assert resp.status_code == 200
        body = resp.json()
        assert body["path"] == "/echo/x?y=1"
        headers = {k.lower(): v for k, v in body["headers"]}
        assert headers["x-forwarded-for"] == "127.0.0.1"
        assert headers["x-forwarded-proto"] == "http"
        assert headers["x-forwarded-host"] == t.host
        for _ in range(50):
            if t.records():
                break
            await asyncio.sleep(0.02)
        (record,) = t.records()
        assert (record.method, record.path, record.status) == ("GET", "/echo/x?y=1", 200)
        assert record.bytes_out > 0 and record.duration_ms > 0
