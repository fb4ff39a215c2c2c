"""/metrics of cluster nodes, scraped over HTTP after real traffic: every series labelled with
its node, streams forwarded to / received from each other node, links up, Redis reachable."""

from __future__ import annotations

import httpx

from tests.cluster.nodes import cluster_nodes, linked
from tests.relay.helpers import get, metrics_dict
from tests.support.stack import agent_for
from tests.support.waiting import eventually


async def scrape(node) -> tuple[str, dict[str, float]]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.agents_port}") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text, metrics_dict(response.text)


async def test_each_node_s_metrics_carry_its_id_and_count_streams_between_nodes(
    redis_server, app_port
):
    async with (
        cluster_nodes(redis_server.url, 3) as (one, two, three),
        agent_for(one, app_port, "shop") as shop,
    ):
        await linked([one, two, three])
        await eventually(lambda: two.routes.get("shop") is not None, what="node2's route")
        for _ in range(3):  # each on its own connection
            got = await get(two.http_port, f"shop.localhost:{two.http_port}", "/echo")
            assert got.status == 200, got.head
        got = await get(one.http_port, shop.host, "/echo")  # the owner: no node link
        assert got.status == 200

        text, m1 = await scrape(one)
        _, m2 = await scrape(two)
        _, m3 = await scrape(three)
        samples = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert samples and all('node="node1"' in line for line in samples), samples
        assert m1['molehill_tunnels{node="node1"}'] == 1
        assert m2['molehill_tunnels{node="node2"}'] == 0
        # requests count where the visitor arrived (that node parses HTTP and applies policy)
        assert m1['molehill_requests_total{node="node1"}'] == 1
        assert m2['molehill_requests_total{node="node2"}'] == 3
        assert m2['molehill_responses_total{class="2xx",node="node2"}'] == 3
        assert m2['molehill_cluster_streams_forwarded_total{peer="node1",node="node2"}'] == 3
        assert m2['molehill_cluster_streams_forwarded_total{peer="node3",node="node2"}'] == 0
        assert m1['molehill_cluster_streams_received_total{peer="node2",node="node1"}'] == 3
        assert m1['molehill_cluster_streams_received_total{peer="node3",node="node1"}'] == 0
        assert m1['molehill_cluster_streams_forwarded_total{peer="node2",node="node1"}'] == 0
        for node_id, m in (("node1", m1), ("node2", m2), ("node3", m3)):
            assert m[f'molehill_cluster_links{{direction="out",node="{node_id}"}}'] == 2
            assert m[f'molehill_cluster_links{{direction="in",node="{node_id}"}}'] == 2
            assert m[f'molehill_cluster_redis_reachable{{node="{node_id}"}}'] == 1
        assert 'molehill_request_duration_seconds_bucket{le="+Inf",node="node1"} 1' in text

        redis_server.kill()
        await eventually(lambda: not one.registry.reachable, 20, what="node1 to miss Redis")
        _, m1 = await scrape(one)
        assert m1['molehill_cluster_redis_reachable{node="node1"}'] == 0
