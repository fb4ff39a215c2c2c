"""The status block of `molehill http` and `start` on a real pseudo-terminal: forwarding lines,
figures and the latest requests, redrawn in place within the terminal's size; plain lines when
stdout is not a terminal."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from tests.support.apps import raw_server
from tests.support.cli import molehill_process
from tests.support.stack import running_relay
from tests.support.terminal import Terminal


def row(lines: list[str], label: str) -> str:
    return next((line for line in lines if line.startswith(label)), "")


def figures(lines: list[str]) -> list[str]:
    """The values under "Connections  ttl opn rt1 rt5 p50 p90"."""
    at = next(i for i, line in enumerate(lines) if line.startswith("Connections"))
    return lines[at + 1].split()


@pytest.mark.parametrize(("width", "height"), [(80, 24), (120, 40)])
async def test_http_on_a_terminal_shows_the_status_block(app_port, width, height):
    term = Terminal(width, height)
    try:
        async with (
            running_relay() as relay,
            molehill_process(
                "http",
                f"localhost:{app_port}",
                "--relay",
                relay.agents_url,
                "--subdomain",
                "st",
                stdout=term.slave,
            ) as agent,
        ):
            public = f"http://st.localhost:{relay.http_port}"
            lines = await term.wait_for(lambda ls: "online" in row(ls, "Tunnel status"))
            assert row(lines, "Forwarding").split()[1:] == [
                public,
                "->",
                f"http://localhost:{app_port}",
            ]
            assert row(lines, "Version").split()[1]
            assert row(lines, "Relay").split()[1] == relay.agents_url
            assert not term.screen.cursor_visible  # hidden while the block is drawn

            count = 15
            host = f"st.localhost:{relay.http_port}"
            async with httpx.AsyncClient(base_url=relay.http_url, headers={"Host": host}) as c:
                for i in range(count):
                    assert (await c.get(f"/echo/r{i}")).status_code == 200
            lines = await term.wait_for(lambda ls: figures(ls)[:1] == [str(count)])
            _total, open_now, rate_1m, rate_5m, p50, p90 = figures(lines)
            assert open_now == "0"
            assert float(rate_1m) == pytest.approx(count / 60, abs=0.01)
            assert float(rate_5m) == pytest.approx(count / 300, abs=0.01)
            assert p50.endswith("ms") and p90.endswith("ms")
            assert float(p50[:-2]) <= float(p90[:-2])
            assert re.search(r"RTT \d+(\.\d+)?ms", row(lines, "Relay")), row(lines, "Relay")

            shown = [line for line in lines if re.search(r"GET\s+/echo/r\d+", line)]
            room = height - 1 - lines.index("-------------") - 1
            assert len(shown) == min(10, room)  # the latest ten, newest first, as room allows
            assert "/echo/r14 " in shown[0]
            assert len(lines) <= height  # the block plus the cursor's empty line
            assert all(len(line) < width for line in lines), [len(x) for x in lines]
            assert "\x1b[2J" not in term.raw  # redrawn in place, never a full clear

            assert await agent.terminate() == 0
            await asyncio.sleep(0.1)
            term.read()
            assert term.screen.cursor_visible  # the terminal is given back as it was
            assert row(term.screen.lines, "Connections")  # the last frame stays on screen
    finally:
        term.close()


async def test_the_block_fits_a_short_terminal(app_port):
    term = Terminal(60, 12)
    try:
        async with (
            running_relay() as relay,
            molehill_process(
                "http",
                str(app_port),
                "--relay",
                relay.agents_url,
                "--subdomain",
                "tiny",
                stdout=term.slave,
            ) as agent,
        ):
            lines = await term.wait_for(lambda ls: "online" in row(ls, "Tunnel status"))
            assert len(lines) <= 12
            assert all(len(line) < 60 for line in lines)
            assert await agent.terminate() == 0
    finally:
        term.close()


async def test_start_on_a_terminal_shows_one_forwarding_line_per_tunnel(tmp_path, app_port):
    term = Terminal(120, 40)
    try:
        async with raw_server() as second, running_relay() as relay:
            profiles = tmp_path / "profiles.toml"
            profiles.write_text(
                f'[relay]\nurl = "{relay.agents_url}"\n\n'
                f'[profiles.web]\ntarget = "http://127.0.0.1:{app_port}"\n\n'
                f"[profiles.api]\nport = {second.port}\n"
            )
            async with molehill_process(
                "--profiles", str(profiles), "start", "--all", stdout=term.slave
            ) as run:
                lines = await term.wait_for(
                    lambda ls: (
                        row(ls, "Tunnel status").endswith("online")
                        and "/" not in row(ls, "Tunnel status")
                    )
                )
                forwarding = [line for line in lines if "->" in line]
                assert len(forwarding) == 2, lines
                assert f"[web] http://web.localhost:{relay.http_port} -> " in forwarding[0]
                assert forwarding[0].endswith(f"http://127.0.0.1:{app_port}")
                assert f"[api] http://api.localhost:{relay.http_port} -> " in forwarding[1]
                async with httpx.AsyncClient(base_url=relay.http_url) as c:
                    await c.get("/x", headers={"Host": f"api.localhost:{relay.http_port}"})
                lines = await term.wait_for(lambda ls: any("[api] " in x and "/x" in x for x in ls))
                assert await run.terminate() == 0
    finally:
        term.close()


async def test_not_a_terminal_gives_plain_lines_without_escapes(app_port):
    async with (
        running_relay() as relay,
        molehill_process("http", str(app_port), "--relay", relay.agents_url) as agent,
    ):
        first = await agent.line()
        assert re.fullmatch(
            r"tunnel '[a-z0-9-]+' online: http://\S+ -> http://127\.0\.0\.1:\d+", first
        ), first
        assert "\x1b" not in first
        assert await agent.terminate() == 0


async def test_a_dumb_terminal_gets_plain_lines(app_port):
    term = Terminal(80, 24)
    try:
        async with (
            running_relay() as relay,
            molehill_process(
                "http",
                str(app_port),
                "--relay",
                relay.agents_url,
                "--subdomain",
                "dumb",
                stdout=term.slave,
                env={"TERM": "dumb"},
            ) as agent,
        ):
            lines = await term.wait_for(lambda ls: any("online" in x for x in ls))
            assert lines[0].startswith("tunnel 'dumb' online: "), lines
            assert "\x1b" not in term.raw
            assert await agent.terminate() == 0
    finally:
        term.close()
