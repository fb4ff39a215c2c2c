"""Shared pytest set-up: the tests run on asyncio's own loop; servers bind port 0 on loopback."""

from __future__ import annotations

import asyncio

import pytest

import tests.support.environ  # noqa: F401  (points the resume-token file at a temp dir)
from tests.support.apps import local_app


@pytest.fixture
async def app_port():
    async with local_app() as port:
        yield port


@pytest.fixture
async def loop_errors():
    """Exceptions that escape into the event loop (a protocol callback that raised, say)."""
    loop = asyncio.get_running_loop()
    errors: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(
        lambda _, context: errors.append(f"{context.get('message')}: {context.get('exception')!r}")
    )
    yield errors
    loop.set_exception_handler(previous)
