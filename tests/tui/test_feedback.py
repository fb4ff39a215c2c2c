"""`c` and `o` say what really happened: OSC 52 cannot be confirmed, a browser may not exist.

No real browser is ever started: ``webbrowser.get`` is replaced in every test that presses `o`.
"""

from __future__ import annotations

import webbrowser

import pytest
from textual.widgets._toast import Toast

from tests.tui.drive import canned_ready, wait_for

URL = "https://frontend.example.net"  # the canned frontend tunnel's public URL


def capture(app) -> list[tuple[str, dict]]:
    """Record every notification the app shows (and still show it)."""
    notes: list[tuple[str, dict]] = []
    show = app.notify

    def notify(message, **kwargs):
        notes.append((message, kwargs))
        return show(message, **kwargs)

    app.notify = notify
    return notes


class FakeBrowser(webbrowser.BaseBrowser):
    def __init__(self, name: str, works: bool) -> None:
        super().__init__(name)
        self.works = works
        self.opened: list[str] = []

    def open(self, url, new=0, autoraise=True):
        self.opened.append(url)
        return self.works


@pytest.fixture
def headless(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


def _no_browser():
    raise webbrowser.Error("could not locate runnable browser")


async def _press(app, key, size=(80, 24)) -> list[tuple[str, dict]]:
    notes = capture(app)
    async with app.run_test(size=size, notifications=True) as pilot:
        await canned_ready(pilot)
        await pilot.press(key)
        await wait_for(pilot, lambda: notes, timeout=5)
        await pilot.pause(0.1)
        toasts = [str(t.render()) for t in app.screen.query(Toast)]
        assert any(notes[-1][0] in t for t in toasts)  # on screen, not only in a log
    return notes


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_copy_says_the_url_was_sent_by_osc52_and_shows_it(canned_app, size):
    notes = await _press(canned_app, "c", size)
    message, _ = notes[-1]
    assert canned_app.clipboard == URL
    assert "OSC 52" in message and URL in message
    assert "set -g set-clipboard on" in message  # what to do in tmux
    assert not message.lower().startswith("copied")  # no claim it cannot check


async def test_open_without_a_display_says_so_and_shows_the_url(canned_app, monkeypatch, headless):
    monkeypatch.setattr(webbrowser, "get", _no_browser)
    notes = await _press(canned_app, "o")
    message, options = notes[-1]
    assert "Cannot open a browser" in message and "DISPLAY" in message
    assert URL in message
    assert options.get("severity") == "warning"


async def test_open_refuses_a_text_browser_that_would_take_over_the_terminal(
    canned_app, monkeypatch, headless
):
    lynx = FakeBrowser("lynx", works=True)
    monkeypatch.setattr(webbrowser, "get", lambda: lynx)
    notes = await _press(canned_app, "o")
    message, _ = notes[-1]
    assert "lynx" in message and URL in message
    assert lynx.opened == []


async def test_open_says_when_the_browser_did_not_start(canned_app, monkeypatch):
    broken = FakeBrowser("xdg-open", works=False)
    monkeypatch.setattr(webbrowser, "get", lambda: broken)
    notes = await _press(canned_app, "o")
    message, options = notes[-1]
    assert broken.opened == [URL]
    assert "did not start" in message and URL in message
    assert options.get("severity") == "warning"


async def test_open_with_a_browser_says_it_asked_it(canned_app, monkeypatch):
    browser = FakeBrowser("xdg-open", works=True)
    monkeypatch.setattr(webbrowser, "get", lambda: browser)
    notes = await _press(canned_app, "o")
    assert browser.opened == [URL]
    assert notes[-1][0] == f"Asked your browser to open {URL}"


@pytest.mark.parametrize("key", ["c", "o"])
async def test_copy_and_open_in_the_merged_view_ask_for_a_tunnel(canned_app, monkeypatch, key):
    monkeypatch.setattr(webbrowser, "get", _no_browser)
    notes = capture(canned_app)
    async with canned_app.run_test(size=(80, 24)) as pilot:
        await canned_ready(pilot)
        canned_app.query_one("#sidebar").highlighted = 0
        await wait_for(pilot, lambda: canned_app.selected == "__all__")
        await pilot.press(key)
        await wait_for(pilot, lambda: notes, timeout=5)
    assert "select a tunnel" in notes[-1][0]
