"""Names in the dashboard, with pilot against real relays: a stopped tunnel's name is free at once,
a held name is counted down and retried, takeover is asked, an edit restarts the tunnel, and a
relay already running is found rather than duplicated."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from rich.cells import cell_len
from textual.widgets._toast import Toast

from profiles.model import Profile, ProfilesFile
from profiles.model import RelaySettings as ProfileRelay
from profiles.store import save
from relay.server import RelaySettings
from tests.relay.helpers import get, make_token
from tests.support.apps import raw_server
from tests.support.cli import molehill_process
from tests.support.killed_dashboard import run_and_kill_dashboard
from tests.support.stack import agent_for, lose_connection, running_relay
from tests.tui.drive import make_app, wait_for, wait_online
from tui.app import MolehillApp
from tui.screens.profile_form import ProfileFormScreen
from tui.screens.takeover import TakeoverScreen
from tui.widgets.tunnel_list import TunnelList

SIZES = [(80, 24), (120, 40)]
ALICE = make_token("alice")


def profiles(path, relay=None, **ports: int) -> None:
    save(
        ProfilesFile(
            relay=relay or ProfileRelay(),
            profiles={name: Profile(name, port, autostart=True) for name, port in ports.items()},
        ),
        path,
    )


def sidebar_lines(app, key: str) -> list[str]:
    """The lines of ``key``'s sidebar entry; the state and the countdown are checked to fit
    the sidebar uncut (an error line is cut by design: the line above the log has it whole)."""
    sidebar = app.query_one(TunnelList)
    lines = sidebar.get_option(key).prompt.plain.split("\n")
    width = sidebar.scrollable_content_region.width
    for line in lines:
        if line is lines[0] or line.strip().startswith("retry in"):
            assert cell_len(line) <= width, f"{line!r} is cut at {width} columns"
    return lines


def toasts(app) -> str:
    return "\n".join(str(t.render()) for t in app.screen.query(Toast))


async def held_name(relay, app_port: int, name: str, **agent) -> None:
    """``name`` held on ``relay``: its agent lost its connection (as a crashed dashboard's)."""
    async with agent_for(relay, app_port, name, **agent) as lost:
        await lose_connection(lost)
    await wait_until(lambda: name in relay.leases)


async def wait_until(condition, tries: int = 100) -> None:
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_stop_then_start_gets_the_name_back_at_once(tmp_path, app_port, size):
    path = tmp_path / "profiles.toml"
    profiles(path, web=app_port)
    app = make_app(path)
    async with app.run_test(size=size, notifications=True) as pilot:
        await wait_online(pilot, app, "web")
        relay = app.host.embedded
        await pilot.press("x")
        await wait_for(pilot, lambda: app.statuses["web"].state == "stopped")
        assert "web" not in relay.leases and "web" not in relay.tunnels
        page = await get(relay.http_port, f"web.localhost:{relay.http_port}")
        assert page.status == 404  # "no tunnel here", not "held while it reconnects"
        await pilot.press("s")
        await wait_online(pilot, app, "web")
        assert app.statuses["web"].url.startswith("http://web.localhost:")
        assert "held" not in toasts(app)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_a_held_name_counts_down_live_and_is_retried_when_free(tmp_path, app_port, size):
    async with running_relay(lease=4.0) as relay:
        await held_name(relay, app_port, "web")
        path = tmp_path / "profiles.toml"
        profiles(path, ProfileRelay(url=relay.agents_url), web=app_port)
        app = make_app(path)
        async with app.run_test(size=size, notifications=True) as pilot:
            await wait_for(pilot, lambda: "web" in app.holds)
            assert not isinstance(app.screen, TakeoverScreen)  # no token: nothing to offer
            seen = []
            for _ in range(60):
                lines = sidebar_lines(app, "web")
                if lines[-1].strip().startswith("retry in"):
                    assert lines[0].endswith("web  held"), lines
                    seconds = int(lines[-1].split()[2])
                    if not seen or seen[-1] != seconds:
                        seen.append(seconds)
                elif app.statuses.get("web") and app.statuses["web"].state == "online":
                    break
                await pilot.pause(0.1)
            assert len(seen) >= 2 and seen == sorted(seen, reverse=True), seen
            await wait_online(pilot, app, "web")  # retried on its own once the lease ran out
            assert "web" not in app.holds
            note = toasts(app)
            assert "--subdomain" not in note and "held for the agent that had it" in note
            assert (await get(relay.http_port, f"web.localhost:{relay.http_port}")).status == 200


@pytest.mark.parametrize(
    ("size", "take"), [((80, 24), True), ((120, 40), False)], ids=["80x24-take", "120x40-wait"]
)
async def test_a_held_name_of_our_token_offers_takeover(tmp_path, app_port, size, take):
    async with running_relay(tokens=(ALICE.entry,), lease=60.0) as relay:
        await held_name(relay, app_port, "site", token=ALICE.secret)
        path = tmp_path / "profiles.toml"
        profiles(path, ProfileRelay(url=relay.agents_url, token=ALICE.secret), site=app_port)
        app = make_app(path)
        async with app.run_test(size=size, notifications=True) as pilot:
            await wait_for(
                pilot,
                lambda: (
                    isinstance(app.screen, TakeoverScreen)
                    and app.screen.query("#takeover-question")
                ),
            )
            question = str(app.screen.query_one("#takeover-question").render())
            assert "Take 'site' over?" in question
            assert "--subdomain" not in str(app.screen.query_one("#takeover-why").render())
            await pilot.press("y" if take else "n")
            await wait_for(pilot, lambda: not isinstance(app.screen, TakeoverScreen))
            if take:
                await wait_online(pilot, app, "site")
                assert "site" not in relay.leases
                page = await get(relay.http_port, f"site.localhost:{relay.http_port}")
                assert page.status == 200
            else:
                await wait_for(pilot, lambda: "site" in app.holds)
                lines = sidebar_lines(app, "site")
                assert "held" in lines[0] and lines[-1].strip().startswith("retry in")
                assert app.statuses["site"].state == "error"
                assert "site" in relay.leases  # nobody took it


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_editing_a_running_profile_restarts_it_with_the_new_settings(
    tmp_path, app_port, size
):
    async with raw_server() as second_app:
        second_app.response = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"
        path = tmp_path / "profiles.toml"
        profiles(path, frontend=app_port)
        app = make_app(path)
        async with app.run_test(size=size, notifications=True) as pilot:
            await wait_online(pilot, app, "frontend")
            port = app.host.embedded.http_port
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, ProfileFormScreen))
            app.screen.query_one("#field-port").value = str(second_app.port)
            await pilot.pause()
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: not isinstance(app.screen, ProfileFormScreen))
            await wait_for(pilot, lambda: "restarted with the new settings" in toasts(app))
            assert "saved 'frontend' — restarted with the new settings" in toasts(app)
            await wait_for(
                pilot, lambda: app.statuses["frontend"].local == f"127.0.0.1:{second_app.port}"
            )
            await wait_online(pilot, app, "frontend")
            assert app.statuses["frontend"].name == "frontend"  # the same name, at once
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                answer = await client.get("/", headers={"Host": f"frontend.localhost:{port}"})
            assert answer.status_code == 200 and answer.text == "second"


def relay_bar(app) -> str:
    return str(app.query_one("#relay-bar").render())


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_a_relay_already_running_is_found_and_used(tmp_path, app_port, size):
    # `molehill relay` in its own process, as the README runs it (the dashboard's start waits
    # for the probe on this thread: a relay on the test's loop could not answer it).
    args = ("relay", "--http", "127.0.0.1:0", "--agents", "127.0.0.1:0")
    async with molehill_process(*args) as relay:
        http_port = int((await relay.line_matching(r"public HTTP\s+\S+:(\d+)")).group(1))
        agents = (await relay.line_matching(r"agents\s+(ws://\S+)")).group(1)
        path = tmp_path / "profiles.toml"
        profiles(path, web=app_port)
        app = make_app(path, look_for_relay=agents)
        async with app.run_test(size=size) as pilot:
            await wait_online(pilot, app, "web")
            assert app.host.found is not None and app.host.embedded is None
            assert app.statuses["web"].url == f"http://web.localhost:{http_port}"
            # On the relay that was there, not a second one: its visitors reach the app.
            assert (await get(http_port, f"web.localhost:{http_port}")).status == 200
            assert f"found relay {agents}" in relay_bar(app)
        assert await relay.terminate() == 0


async def test_something_else_on_the_relay_port_means_an_embedded_relay(tmp_path, app_port):
    async with raw_server() as other:
        path = tmp_path / "profiles.toml"
        profiles(path, web=app_port)
        app = make_app(path, look_for_relay=f"ws://127.0.0.1:{other.port}")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_online(pilot, app, "web")
            assert app.host.found is None and app.host.embedded is not None
            embedded = app.host.embedded
            bar = relay_bar(app)
            assert f"localhost:{embedded.http_port}" in bar
            assert f"agents :{embedded.agents_port}" in bar


async def test_a_taken_public_port_moves_the_embedded_relay_and_says_so(tmp_path, app_port):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    taken = busy.getsockname()[1]
    try:
        path = tmp_path / "profiles.toml"
        profiles(path, web=app_port)
        app = MolehillApp(path, relay_settings=RelaySettings(http_port=taken, agents_port=0))
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await wait_online(pilot, app, "web")
            embedded = app.host.embedded
            assert embedded.http_port != taken
            await wait_for(pilot, lambda: "is taken by another program" in toasts(app))
            assert f"127.0.0.1:{embedded.http_port} instead" in app.host.relay_note
            assert f"localhost:{embedded.http_port}" in relay_bar(app)
    finally:
        busy.close()


async def test_quit_and_reopen_against_an_external_relay_keeps_the_name(tmp_path, app_port):
    args = ("relay", "--http", "127.0.0.1:0", "--agents", "127.0.0.1:0", "--lease", "120")
    async with molehill_process(*args) as relay:
        http_port = int((await relay.line_matching(r"public HTTP\s+\S+:(\d+)")).group(1))
        agents = (await relay.line_matching(r"agents\s+(ws://\S+)")).group(1)
        path = tmp_path / "profiles.toml"
        profiles(path, ProfileRelay(url=agents), web=app_port)
        first = MolehillApp(path)
        async with first.run_test(size=(80, 24)) as pilot:
            await wait_online(pilot, first, "web")
            await pilot.press("q")
        # Quitting stopped the tunnel on purpose: the name is free, not held for 120 s.
        page = await get(http_port, f"web.localhost:{http_port}")
        assert page.status == 404, page.body
        again = MolehillApp(path)
        async with again.run_test(size=(120, 40), notifications=True) as pilot:
            await wait_online(pilot, again, "web")
            assert "web" not in again.holds and "held" not in toasts(again)
            assert (await get(http_port, f"web.localhost:{http_port}")).status == 200
        assert await relay.terminate() == 0


async def test_a_name_in_use_by_our_own_token_can_be_taken_over(tmp_path, app_port):
    async with (
        running_relay(tokens=(ALICE.entry,)) as relay,
        agent_for(relay, app_port, "site", token=ALICE.secret) as elsewhere,
    ):
        path = tmp_path / "profiles.toml"
        profiles(path, ProfileRelay(url=relay.agents_url, token=ALICE.secret), site=app_port)
        app = make_app(path)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(
                pilot,
                lambda: (
                    isinstance(app.screen, TakeoverScreen) and app.screen.query("#takeover-why")
                ),
            )
            why = str(app.screen.query_one("#takeover-why").render())
            assert "in use by another agent" in why and "--" not in why
            await pilot.pause()  # laid out: the click lands on the button
            assert await pilot.click("#take")
            await wait_online(pilot, app, "site")
            await wait_for(pilot, lambda: elsewhere.task.done())
            assert elsewhere.task.exception().code == "replaced"  # it stops, it does not fight
            assert app.statuses["site"].name == "site"
            assert (await get(relay.http_port, elsewhere.host)).status == 200


async def test_a_killed_dashboards_name_comes_back_to_the_reopened_dashboard(
    tmp_path, app_port, monkeypatch
):
    store = tmp_path / "resume.json"
    monkeypatch.setenv("MOLEHILL_RESUME_FILE", str(store))  # the store both runs share
    async with running_relay(lease=60.0) as relay:
        await run_and_kill_dashboard(relay.agents_url, app_port, store)
        await wait_until(lambda: "web" in relay.leases)
        path = tmp_path / "profiles.toml"
        profiles(path, ProfileRelay(url=relay.agents_url), web=app_port)
        app = make_app(path)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await wait_online(pilot, app, "web")  # with the kept token: no refusal, no wait
            assert "web" not in app.holds and "held" not in toasts(app)
            assert "web" not in relay.leases
