"""The details of a WebSocket exchange in the dashboard: its messages, growing while the screen is
open (a real websockets echo server behind a real tunnel), closed when the connection ends, kept
in the store, and shown again from history."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from websockets.asyncio.client import connect

from inspector import CaptureSettings, open_store
from profiles.model import Profile
from tests.inspector.test_messages_live import echo_server
from tests.tui.drive import make_app, wait_for, wait_online
from tests.tui.test_inspector_dashboard import profiles
from tui.screens.details import RequestDetailsScreen
from tui.widgets.message_list import MessageList
from tui.widgets.request_log import RequestLog

SIZES = [(80, 24), (120, 40)]


def shown(widget: MessageList) -> str:
    out = io.StringIO()
    Console(file=out, width=widget.size.width or 80, color_system=None).print(widget.content)
    return out.getvalue()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_messages_show_live_in_details_and_from_history(tmp_path, size):
    settings = CaptureSettings(path=tmp_path / "captures.sqlite3")
    async with echo_server() as port:
        path = profiles(tmp_path, chat=Profile("chat", port, autostart=True))
        app = make_app(path, captures=settings)
        async with app.run_test(size=size) as pilot:
            await wait_online(pilot, app, "chat")
            relay_port = app.host.embedded.http_port
            url = f"ws://chat.localhost:{relay_port}/live"
            async with connect(url, host="127.0.0.1", port=relay_port, compression=None) as ws:
                await ws.send("hello from the visitor")
                assert await ws.recv() == "hello from the visitor"
                log = app.query_one(RequestLog)
                await wait_for(pilot, lambda: len(log.rows) == 1)
                assert log.rows[0][1].status == 101
                log.focus()
                await pilot.press("home", "enter")
                await wait_for(pilot, lambda: isinstance(app.screen, RequestDetailsScreen))
                messages = app.screen.query_one(MessageList)
                await wait_for(pilot, lambda: "hello from the visitor" in shown(messages))
                messages.scroll_visible(animate=False)  # below the heads at 80x24
                await wait_for(pilot, lambda: 0 < messages.region.bottom <= size[1])
                text = shown(messages)
                assert "2 kept" in text and "open" in text and "→ in" in text
                assert messages.region.width > 0

                # While the screen is open, new messages appear on it.
                await ws.send(b"\x00\xffbinary")
                await ws.recv()
                await wait_for(pilot, lambda: "4 kept" in shown(messages))
                assert "00 ff 62" in shown(messages)  # binary: as hex
            await wait_for(pilot, lambda: "closed" in shown(messages))
            assert "6 kept" in shown(messages)  # and the two close frames
            await pilot.press("escape")

            assert app.captures.writer is not None and app.captures.writer.flush()
            with open_store(settings) as store:
                [row] = store.select(full=True)
            assert [m.kind for m in row.messages] == [
                "text", "text", "binary", "binary", "close", "close",
            ]  # fmt: skip
            assert row.messages_closed and row.messages_protocol == "websocket"

        # The dashboard opened again shows them from the store.
        again = make_app(path, captures=settings)
        async with again.run_test(size=size) as pilot:
            log = again.query_one(RequestLog)
            await wait_for(pilot, lambda: len(log.rows) == 1)
            log.focus()
            await pilot.press("home", "enter")
            await wait_for(pilot, lambda: isinstance(again.screen, RequestDetailsScreen))
            messages = again.screen.query_one(MessageList)
            await wait_for(pilot, lambda: "6 kept" in shown(messages))
            assert "hello from the visitor" in shown(messages) and "closed" in shown(messages)
