"""Cluster test fixtures: a real redis-server per test (fails under CI=true when missing)."""

from __future__ import annotations

import pytest

from tests.cluster.redis_proc import RedisServer


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
