"""What an operator watches: /healthz, /metrics after real traffic, and one log line per agent
session event (JSON with --log-format json)."""

from __future__ import annotations

import asyncio
import json
import re

import httpx

from relay.server.metrics import render
from tests.relay.helpers import agent_at, get, metrics_dict, open_from, refusal
from tests.support.cli import molehill_process
from tests.support.stack import (
    agent_for,
    lose_connection,
    raw_request,
    read_response,
    running_relay,
)


async def test_healthz(app_port):
    async with running_relay() as relay:
        base = f"http://127.0.0.1:{relay.agents_port}"
        async with httpx.AsyncClient(base_url=base) as client:
            health = await client.get("/healthz")
            assert (health.status_code, health.text) == (200, "ok\n")
            other = await client.get("/")
            assert other.status_code == 426 and "molehill http PORT --relay" in other.text


async def test_metrics_after_traffic(app_port):
    async with (
        running_relay() as relay,
        agent_for(relay, app_port, "one") as one,
        agent_for(relay, app_port, "two"),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.agents_port}") as scraper,
    ):
        for path in ("/", "/echo", "/status/201"):
            assert (await get(relay.http_port, one.host, path)).status // 100 == 2
        assert (await get(relay.http_port, one.host, "/status/404")).status == 404
        assert (await get(relay.http_port, one.host, "/status/503")).status == 503
        assert (await get(relay.http_port, f"nobody.localhost:{relay.http_port}")).status == 404
        # one visitor stays connected: a live stream
        reader, writer = await open_from(relay.http_port)
        writer.write(raw_request(one.host))
        assert (await read_response(reader)).status == 200

        response = await scraper.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        m = metrics_dict(response.text)
        assert m["molehill_tunnels"] == 2
        assert m["molehill_streams"] == 1
        assert m["molehill_public_connections"] == 1
        assert m["molehill_leases"] == 0
        assert m["molehill_requests_total"] == 6  # the relay's own 404 page is not relayed
        assert m['molehill_responses_total{class="2xx"}'] == 4
        assert m['molehill_responses_total{class="4xx"}'] == 1
        assert m['molehill_responses_total{class="5xx"}'] == 1
        assert m['molehill_responses_total{class="3xx"}'] == 0
        assert m["molehill_error_pages_total"] == 1
        assert m['molehill_bytes_total{direction="in"}'] > 6 * len(b"GET / HTTP/1.1\r\n\r\n")
        assert (
            m['molehill_bytes_total{direction="out"}'] > m['molehill_bytes_total{direction="in"}']
        )
        buckets = [k for k in m if k.startswith("molehill_request_duration_seconds_bucket")]
        assert buckets[-1] == 'molehill_request_duration_seconds_bucket{le="+Inf"}'
        assert [m[k] for k in buckets] == sorted(m[k] for k in buckets)  # cumulative
        assert m['molehill_request_duration_seconds_bucket{le="+Inf"}'] == 6
        assert m["molehill_request_duration_seconds_count"] == 6
        assert 0 < m["molehill_request_duration_seconds_sum"] < 6
        writer.close()

        await lose_connection(one)  # a crash: its name is held (a stop would free it)
        await asyncio.sleep(0.05)
        after = metrics_dict((await scraper.get("/metrics")).text)
        assert after["molehill_tunnels"] == 1 and after["molehill_leases"] == 1


async def test_json_log_lines_for_session_events(app_port):
    args = ("--http", "127.0.0.1:0", "--agents", "127.0.0.1:0", "--log-format", "json")
    async with molehill_process("relay", *args) as relay:
        http_port = int((await relay.line_matching(r"public HTTP\s+\S+:(\d+)")).group(1))
        agents = (await relay.line_matching(r"agents\s+(ws://\S+)")).group(1)
        async with agent_at(agents, app_port, "logged", http_port) as tunnel:
            online = await relay.json_err_until(lambda r: r.get("event") == "tunnel_online")
            assert online["name"] == "logged" and online["level"] == "INFO" and online["time"]
            assert online["peer"].startswith("127.0.0.1:")
            refused = await refusal(_Remote(agents), app_port, "logged")
            assert refused.code == "name_taken"
            record = await relay.json_err_until(lambda r: r.get("event") == "agent_refused")
            assert record["code"] == "name_taken"
            await lose_connection(tunnel)  # lost, not stopped: the name is held
            offline = await relay.json_err_until(lambda r: r.get("event") == "tunnel_offline")
            assert offline["name"] == "logged" and offline["held_for"] == 120.0
            assert offline["reason"]
        assert await relay.terminate() == 0
        rest = await relay.rest_of_stderr()
    for line in relay.err_lines + rest.splitlines():
        assert "event" in json.loads(line) or "message" in json.loads(line), line


async def test_agent_connections_gauge_counts_agents_only(app_port):
    async with (
        running_relay() as relay,
        agent_for(relay, app_port, "one"),
        agent_for(relay, app_port, "two"),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.agents_port}") as scraper,
    ):
        m = metrics_dict((await scraper.get("/metrics")).text)
        assert m["molehill_agent_connections"] == 2


class _Remote:
    def __init__(self, url: str) -> None:
        self.agents_url = url
        self.http_port = 0


async def test_the_guide_lists_every_metric_and_log_event():
    from tests.support.cli import ROOT

    guide = (ROOT / "docs" / "self-hosting.md").read_text()
    async with running_relay() as relay:
        text = render(relay)
    names = {
        re.sub(r"_(bucket|sum|count)$", "", n) for n in re.findall(r"^(molehill_\w+)", text, re.M)
    }
    assert len(names) == 15
    assert not [n for n in sorted(names) if f"`{n}" not in guide]
    source = "".join(
        (ROOT / "relay" / "server" / f).read_text()
        for f in ("relay.py", "agent_session.py", "admission.py")
    )
    events = set(re.findall(r'log_event\(\s*"([a-z_]+)"', source))
    assert {"tunnel_online", "tunnel_offline", "tunnel_closed", "agent_refused"} <= events
    assert not [e for e in sorted(events) if f"`{e}`" not in guide]


async def test_a_flood_of_refusals_is_logged_at_the_rate_and_summed_up(app_port, caplog):
    import logging

    from relay.server import log_budget

    caplog.set_level(logging.INFO, logger="molehill.relay")
    async with running_relay(refusal_log_rate=4) as relay:
        relay.log_budget.summarised_at -= log_budget.SUMMARY_EVERY  # the next sweep sums up
        for n in range(300):  # a name nobody holds: 404 each, a request_refused each
            page = await get(relay.http_port, f"nobody{n % 3}.localhost")
            assert page.status == 404
        m = metrics_dict(render(relay))
        refused = [r for r in caplog.records if r.getMessage().startswith("request_refused")]
        assert len(refused) <= 4 * log_budget.BURST_SECONDS + 4  # the burst, and what refilled
        await asyncio.sleep(1.5)  # the relay's once-a-second sweep
        (summary,) = [r.getMessage() for r in caplog.records if "log_suppressed" in r.getMessage()]
        count = int(re.search(r"count=(\d+)", summary).group(1))
        assert count + len(refused) == 300
        assert "suppressed=request_refused" in summary and f"unknown_tunnel:{count}" in summary
        assert m["molehill_error_pages_total"] == 300  # the metrics counted every one
