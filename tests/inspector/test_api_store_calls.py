"""The local API's store calls run on a worker thread: a caller that is cancelled (the server
closing) leaves its call running there, and nothing else may use the store until it is done."""

from __future__ import annotations

import asyncio
import threading

import pytest

from inspector.api import InspectorApi
from inspector.settings import CaptureSettings


async def test_a_cancelled_callers_store_call_still_holds_the_store(tmp_path):
    api = InspectorApi(CaptureSettings(path=tmp_path / "c.sqlite3"), lambda: [])
    started, release = threading.Event(), threading.Event()
    order: list[str] = []

    def slow(store):
        started.set()
        release.wait(10)
        order.append("slow")
        return store.count()

    first = asyncio.create_task(api._in_store(slow))
    assert await asyncio.to_thread(started.wait, 10)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    # The asyncio lock is free now; the store is not.
    second = asyncio.create_task(api._in_store(lambda store: order.append("second")))
    closing = threading.Thread(target=lambda: (api.close(), order.append("closed")))
    await asyncio.sleep(0.2)
    assert order == [] and not second.done()
    closing.start()
    await asyncio.sleep(0.2)
    assert order == []  # close() waits for the call too
    release.set()
    await second
    await asyncio.to_thread(closing.join, 10)
    assert order[0] == "slow" and sorted(order[1:]) == ["closed", "second"]
    api.close()
