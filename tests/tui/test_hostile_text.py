"""A visitor's text in the dashboard: shown, never obeyed, never a crash.

Header values, message previews and event names are anyone's text. Drawn as they came, an ESC or
CSI in them reached the developer's terminal as an escape sequence (clear the screen, retitle
the window, OSC 52: fill the clipboard), and a ``[/bold]`` in a header was read as Rich markup
and raised MarkupError when the details opened. A real visitor, a real tunnel, the real screen.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from textual.widgets import Static
from textual.widgets._toast import Toast
from websockets.asyncio.client import connect

from inspector import CaptureSettings
from profiles.model import Profile
from tests.inspector.test_messages_live import echo_server
from tests.tui.drive import make_app, wait_for, wait_online
from tests.tui.test_inspector_dashboard import profiles
from tui.screens.details import RequestDetailsScreen
from tui.widgets.message_list import MessageList
from tui.widgets.request_log import RequestLog

SIZES = [(80, 24), (120, 40)]
CLIPBOARD = "\x1b]52;c;ZWNobyBwd25lZA==\x1b\\"  # OSC 52: "echo pwned" into the clipboard
HEADER = "[/bold] [link=https://evil.example]x[/link] \u009b2J"  # markup, and CSI (8-bit)
MESSAGE = f"{CLIPBOARD}\x1b[2J[/b] hello"


def drawn(screen: RequestDetailsScreen, width: int) -> str:
    """What the details screen's widgets draw, as a terminal would receive their text."""
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, force_terminal=True)
    for widget in screen.query(Static):
        console.print(widget.content)
    return out.getvalue()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_escape_sequences_and_markup_from_a_visitor_are_shown_not_obeyed(tmp_path, size):
    settings = CaptureSettings(path=tmp_path / "captures.sqlite3")
    async with echo_server() as port:
        path = profiles(tmp_path, chat=Profile("chat", port, autostart=True))
        app = make_app(path, captures=settings)
        async with app.run_test(size=size) as pilot:
            await wait_online(pilot, app, "chat")
            relay_port = app.host.embedded.http_port
            url = f"ws://chat.localhost:{relay_port}/live"
            async with connect(
                url,
                host="127.0.0.1",
                port=relay_port,
                compression=None,
                additional_headers={"X-Evil": HEADER},
            ) as ws:
                await ws.send(MESSAGE)
                assert await ws.recv() == MESSAGE
                log = app.query_one(RequestLog)
                await wait_for(pilot, lambda: len(log.rows) == 1)
                log.focus()
                await pilot.press("home", "enter")
                await wait_for(pilot, lambda: isinstance(app.screen, RequestDetailsScreen))
                screen = app.screen
                assert isinstance(screen, RequestDetailsScreen)
                messages = screen.query_one(MessageList)
                await wait_for(pilot, lambda: "hello" in drawn(screen, size[0]))
                text = drawn(screen, size[0])
                # The markup is text, the controls are spelled out, and none reach the terminal.
                assert "[/bold]" in text and "[link=https://evil.example]" in text
                assert "\\x9b2J" in text
                assert "\\x1b]52;c;" in text and "\\x1b[2J[/b]" in text
                assert "\x1b" not in _without_styles(text) and "\x9b" not in text
                assert messages.region.width > 0
                # The in-app editor would draw the header's CSI as it is: it refuses, and says
                # where to edit instead.
                await pilot.press("e")
                await wait_for(pilot, lambda: _notified(app, "control characters"))
                assert isinstance(app.screen, RequestDetailsScreen)
                assert "requests replay ID --edit" in _notified(app, "control characters")
                await pilot.press("escape")
            assert not isinstance(app.screen, RequestDetailsScreen)


def _notified(app, words: str) -> str:  # type: ignore[no-untyped-def]
    return next((str(n.message) for n in app._notifications if words in str(n.message)), "")


def _without_styles(text: str) -> str:
    """The console's own output has no styles (color_system None) but may reset them; a raw ESC
    left in the text can only have come from the visitor."""
    return text.replace("\x1b[0m", "")


async def test_a_notification_with_text_that_looks_like_markup_is_shown_as_it_is(tmp_path):
    """Notifications carry a relay's refusal message, a replay's error, a service's stderr: not
    the dashboard's words. Read as markup, `[/bold]` in one raised MarkupError and ended the app
    (and its tunnels); an ESC in one went to the terminal."""
    path = profiles(tmp_path, web=Profile("web", 1))
    app = make_app(path)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        app.notify("name taken: [/bold] [link=https://evil.example]x[/link] \x1b[2J")
        await wait_for(pilot, lambda: bool(app.screen.query(Toast)))
        await pilot.pause(0.2)  # drawn
        assert app.is_running
        drawn_toast = str(app.screen.query_one(Toast).render())
        assert "[/bold]" in drawn_toast and "\x1b" not in drawn_toast
        message = _notified(app, "name taken")
        assert "[/bold] [link=https://evil.example]x[/link]" in message
        assert "\\x1b[2J" in message and "\x1b" not in message
