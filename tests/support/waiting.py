"""Waiting for a condition in async tests, with a message that says what never happened."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def eventually(
    predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition"
) -> float:
    """Wait for ``predicate()`` to be truthy; return how long it took."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None
    return time.monotonic() - started
