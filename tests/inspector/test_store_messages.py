"""Messages in the capture store: appended to their exchange while the connection is open, gone
with it when it is evicted or cleared, and a version 2 store gains the table when opened."""

from __future__ import annotations

import sqlite3

from websockets.frames import Frame, Opcode

from inspector import CaptureSettings, CaptureStore, open_store, open_writer
from inspector.message_rows import MessageUpdate
from inspector.schema import SCHEMA_VERSION
from relay.agent.observe import ExchangeObserver
from relay.events import RequestRecord, StreamMessage
from tests.inspector.test_diff_edit import stored
from tests.unit.test_observe_messages import SWITCHED, UPGRADE


def frame(text: str, mask: bool) -> bytes:
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=mask, extensions=[])


def test_messages_follow_their_exchange_while_it_is_open(tmp_path):
    settings = CaptureSettings(path=tmp_path / "c.sqlite3")
    writer = open_writer(settings)
    assert writer is not None
    records: list[RequestRecord] = []
    obs = ExchangeObserver("c", 1, records.append, 65536, "app", 1000)
    obs.request_bytes(UPGRADE)
    obs.response_bytes(SWITCHED)
    writer.submit("ws", records[0])
    obs.request_bytes(frame('{"token": "abc123456", "ok": true}', True))
    assert writer.flush()
    with open_store(settings) as store:
        [e] = store.select(full=True)
        assert e.messages_protocol == "websocket" and not e.messages_closed
        assert [m.preview for m in e.messages] == [b'{"token":"[redacted]","ok":true}']
    obs.response_bytes(frame("second", False))
    obs.lost(None)
    assert writer.flush()
    writer.close()
    with open_store(settings) as store:
        e = store.get(e.id)
        assert e is not None and e.messages_closed
        assert [m.preview for m in e.messages][1:] == [b"second"]
        store.add_messages([MessageUpdate(999, "websocket", 0, e.messages, 0, "", True)])
        assert store.get(999) is None  # an exchange that is gone gets nothing
        assert store.db.execute("SELECT count(*) FROM messages").fetchone()[0] == 2
        assert store.clear() == 1
        assert store.db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0


def test_messages_are_evicted_with_their_exchange(tmp_path):
    message = StreamMessage(1.0, "in", "text", 10_000, b"m" * 256)
    with CaptureStore(tmp_path / "c.sqlite3", max_bytes=1024 * 1024) as store:
        first = store.add([stored(0, 200, b"", b"")])[0]
        store.add_messages([MessageUpdate(first, "websocket", 0, [message] * 50, 0, "", True)])
        for _ in range(40):  # 40 x 64 KiB bodies: past the bound, the oldest slices go
            store.add([stored(0, 200, b"", b"x" * 65536)])
        assert store.get(first) is None
        left = store.db.execute("SELECT count(*) FROM messages WHERE exchange_id = ?", (first,))
        assert left.fetchone()[0] == 0


def test_a_version_2_store_gains_the_messages_table(tmp_path):
    path = tmp_path / "v2.sqlite3"
    with CaptureStore(path) as store:
        exchange_id = store.add([stored(0, 200, b"", b"")])[0]
    db = sqlite3.connect(path)
    db.executescript(
        """
        DROP TABLE messages;
        ALTER TABLE exchanges DROP COLUMN messages_protocol;
        ALTER TABLE exchanges DROP COLUMN messages_dropped;
        ALTER TABLE exchanges DROP COLUMN messages_note;
        ALTER TABLE exchanges DROP COLUMN messages_closed;
        UPDATE meta SET value = '2' WHERE key = 'schema_version';
        """
    )
    db.close()
    with CaptureStore(path, create=False) as store:
        old = store.get(exchange_id)
        assert old is not None and old.messages_protocol == "" and old.messages == []
        message = StreamMessage(1.0, "out", "event", 3, b"abc", event="tick", id="7")
        store.add_messages([MessageUpdate(exchange_id, "sse", 0, [message], 2, "", True)])
        again = store.get(exchange_id)
        assert again is not None and again.messages == [message] and again.messages_dropped == 2
    check = sqlite3.connect(path)
    version = check.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    check.close()
    assert int(version) == SCHEMA_VERSION == 3
