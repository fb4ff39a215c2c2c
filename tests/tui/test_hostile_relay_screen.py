"""A hostile relay's words on the dashboard: shown, never obeyed, never a crash.

The relay in the profiles file may be somebody else's. Its refusal message, its GOAWAY reason
and the public URL in its WELCOME are drawn in the sidebar and on the line above the log; an
ESC or CSI in them went to the developer's terminal as an escape sequence (OSC 52: a command
into the clipboard). The real dashboard, a fake relay on loopback speaking the real protocol.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from profiles.model import Profile, ProfilesFile
from profiles.model import RelaySettings as ProfileRelay
from profiles.store import save
from relay.wire import codec as p
from tests.support.fake_relay import Agentside, fake_relay, welcome
from tests.tui.drive import make_app, wait_for
from tui.widgets.tunnel_info import TunnelInfo
from tui.widgets.tunnel_list import TunnelList

SIZES = [(80, 24), (120, 40)]
CLIPBOARD = "\x1b]52;c;ZWNobyBwd25lZA==\x07"  # OSC 52: "echo pwned" into the clipboard
WORDS = f"[/bold] [link=https://evil.example]x[/link] {CLIPBOARD}\u009b2J"


async def refuse(side: Agentside) -> None:
    await side.send(p.Error("banned", WORDS))
    await side.until_closed()


async def go_away(side: Agentside) -> None:
    await side.send(welcome(), p.GoAway(WORDS))
    await side.ws.close()


async def bad_url(side: Agentside) -> None:
    await side.send(welcome(url=f"http://pay.example.test/{WORDS}"))
    await side.until_closed()


SCRIPTS = {"refusal": refuse, "goaway": go_away, "welcome-url": bad_url}


def drawn(app, width: int) -> str:  # type: ignore[no-untyped-def]
    """What the sidebar entry and the line above the log draw, as a terminal receives it."""
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, force_terminal=True)
    console.print(app.query_one(TunnelList).get_option("pay").prompt)
    console.print(app.query_one(TunnelInfo).content)
    return out.getvalue().replace("\x1b[0m", "")  # the console's own reset, no style else


@pytest.mark.parametrize("script", list(SCRIPTS))
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_a_relays_words_are_shown_with_their_controls_spelled_out(tmp_path, size, script):
    path = tmp_path / "profiles.toml"
    async with fake_relay(SCRIPTS[script]) as relay:
        save(
            ProfilesFile(
                relay=ProfileRelay(url=relay.url),
                profiles={"pay": Profile("pay", 1, autostart=True)},
            ),
            path,
        )
        app = make_app(path, look_for_relay=None)
        async with app.run_test(size=size) as pilot:
            await wait_for(
                pilot, lambda: (s := app.statuses.get("pay")) is not None and "[/bold]" in s.error
            )
            app.query_one(TunnelList).highlighted = 1  # the tunnel, not "all tunnels"
            await wait_for(pilot, lambda: "[/bold]" in drawn(app, size[0]))
            await pilot.pause(0.2)
            assert app.is_running
            text = drawn(app, size[0])
            assert "[link=https://evil.example]" in text  # markup is text
            assert "\\x1b]52;c;" in text and "\\x9b2J" in text  # controls are spelled out
            assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text
            if script == "welcome-url":
                assert "welcome is not valid" in app.statuses["pay"].error
