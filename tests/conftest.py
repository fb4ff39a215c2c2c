"""Shared pytest set-up: the tests run on asyncio's own loop; servers bind port 0 on loopback."""

from __future__ import annotations

import pytest

import tests.support.environ  # noqa: F401  (points the resume-token file at a temp dir)
from tests.support.apps import local_app


@pytest.fixture
async def app_port():
    async with local_app() as port:
        yield port
