"""A replay asked for right after a request is stored sends the original, not the redacted copy.

The store commits an exchange (readers, the dashboard included, see it at once) before the
capturing process reads the store's answer that gives the exchange its id and files the
unredacted original under it. Under load that answer can come much later; a replay asked for in
between went out with ``[redacted]`` in place of the secrets (an attached dashboard's replay in
CI). Here the capturing process's answers are held back on purpose, with everything else real.
"""

from __future__ import annotations

import asyncio
import threading
import time

from inspector import CaptureSettings, CaptureWriter, open_store, open_writer
from inspector.api import InspectorApi
from tests.inspector.records import observe, request_bytes, response_bytes
from tests.support.apps import raw_server

SECRET = "Bearer s3cret-token"


async def test_a_replay_right_after_the_store_commits_waits_for_the_original(tmp_path):
    path = tmp_path / "c.sqlite3"
    settings = CaptureSettings(path=path)
    writer = open_writer(settings)
    assert isinstance(writer, CaptureWriter)
    answers_may_go = threading.Event()
    read_answer = writer._answer

    def held_answer(item):  # the answers thread: as if it had not been scheduled yet
        answers_may_go.wait(10)
        read_answer(item)

    writer._answer = held_answer  # type: ignore[method-assign]
    api = InspectorApi(settings, lambda: [], writer=writer)
    try:
        async with raw_server() as app:
            request = request_bytes("POST", "/hook", [("Authorization", SECRET)], body=b"{}")
            writer.submit("web", observe(request, response_bytes(200)))
            with open_store(settings) as reader:  # committed: readers see it
                deadline = time.monotonic() + 30
                while reader.get(1) is None:
                    assert time.monotonic() < deadline, "the store never committed it"
                    await asyncio.sleep(0.05)
            assert writer.originals.get(1) is None  # its answer not read yet
            threading.Timer(0.3, answers_may_go.set).start()
            outcome = await api.replay(1, {"target": f"http://127.0.0.1:{app.port}"})
            assert outcome["sent_original"] is True, outcome
            assert SECRET.encode() in bytes(app.received)
    finally:
        answers_may_go.set()
        api.close()
        writer.close()
