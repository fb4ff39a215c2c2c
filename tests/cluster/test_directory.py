"""The directory's answers to ``holders(name)``, asked per forwarded request, are kept between
requests and follow every change of the copy: a name's holders, a node that dies (said or
noticed at a resync), a node that comes back, a name released (real redis-server)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from relay.cluster import directory as directory_module
from relay.cluster import records, scripts
from relay.cluster.directory import Directory, Holder

URL1, URL2, URL2B, URL3 = (f"ws://127.0.0.1:{port}" for port in (7101, 7102, 7112, 7103))


async def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not seen in {timeout} s: {what}"
        await asyncio.sleep(0.02)


async def test_holders_are_kept_and_follow_every_change(redis_server, monkeypatch):
    # No timed resync in this test: a change it publishes is seen through the subscription
    # alone, and a silent one when the test reads the whole copy again (what a resync does).
    monkeypatch.setattr(directory_module, "RESYNC", 3600.0)
    r = redis_server.client()

    def node(node_id: str, url: str | None, say: bool = True) -> None:
        key = records.node_key(node_id)
        if url is None:
            r.delete(key)
        else:
            r.set(key, url)
        if say:
            r.publish(scripts.CHANNEL, key)

    def name(nodes: str | None, state: str = "live", say: bool = True) -> None:
        key = records.name_key("web")
        if nodes is None:
            r.delete(key)
        else:
            first = nodes.split()[0]
            r.hset(key, mapping={"node": first, "nodes": nodes, "state": state, "policy": "{}"})
        if say:
            r.publish(scripts.CHANNEL, key)

    node("me", "ws://127.0.0.1:7100")
    node("n1", URL1)
    node("n2", URL2)
    name("me n1 n2")
    directory = Directory(redis_server.url, "me")
    await directory.start()
    try:

        async def becomes(*wanted: Holder, what: str) -> None:
            await until(lambda: directory.holders("web") == wanted, f"{what}: {wanted}")
            assert directory.holders("web") is directory.holders("web")  # kept, not rebuilt

        # Each step asks first, so the old answer is kept when the change comes.
        await becomes(Holder("n1", URL1, "{}"), Holder("n2", URL2, "{}"), what="the first read")
        name("n2 me")
        await becomes(Holder("n2", URL2, "{}"), what="the name's holders changed")
        node("n2", None)
        await becomes(what="n2 left (and said so)")
        node("n2", URL2B)
        await becomes(Holder("n2", URL2B, "{}"), what="n2 back, listening elsewhere")
        node("n3", URL3, say=False)  # known to Redis only: the name's update looks it up
        name("n3 n2")
        await becomes(Holder("n3", URL3, "{}"), Holder("n2", URL2B, "{}"), what="n3 joined")
        node("n3", None, say=False)  # died without a word (its key expired)
        await asyncio.sleep(0.2)
        assert len(directory.holders("web")) == 2  # not noticed yet: nothing said so
        await directory._read_all()
        await becomes(Holder("n2", URL2B, "{}"), what="n3's death noticed at a resync")
        name("n2", state="held", say=False)  # a change missed by the subscription
        await directory._read_all()
        await becomes(what="the name held (its agent away), read at a resync")
        name("n2")
        await becomes(Holder("n2", URL2B, "{}"), what="the agent back")
        name(None)
        await becomes(what="the name released")
        assert "web" not in directory._holders
        # Names nobody holds are answered without being kept: made-up Host headers add nothing.
        assert directory.holders("nobody.example") == ()
        assert "nobody.example" not in directory._holders
    finally:
        await directory.stop()
