"""`molehill start` runs the profiles' commands: a frontend reading the backend's public URL
from its env calls it through the backend's tunnel; `molehill logs -f` and `molehill env`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import httpx

from runner.output import LOGS_ENV
from tests.apps_run.helpers import app_command, free_port
from tests.support.cli import ROOT, molehill_env, molehill_process, run_molehill


def _profiles(tmp_path) -> tuple[str, int, int]:
    back, front = free_port(), free_port()
    path = tmp_path / "profiles.toml"
    path.write_text(
        f'[profiles.backend]\nport = {back}\ncommand = "{app_command("backend_app.py", back)}"\n'
        'health = "/healthz"\n\n'
        f"[profiles.frontend]\nport = {front}\n"
        f'command = "{app_command("frontend_app.py", front)}"\n'
        'env = { API_URL = "{backend.url}" }\n'
    )
    return str(path), back, front


async def _app_events(run, wanted: dict[str, str], timeout: float = 20.0) -> dict[str, dict]:
    """Read JSON lines until each profile in `wanted` reached its state; the last records."""
    seen: dict[str, dict] = {}
    async with asyncio.timeout(timeout):
        while any(seen.get(k, {}).get("state") != v for k, v in wanted.items()):
            record = json.loads(await run.line())
            if record.get("event") == "app":
                seen[record["profile"]] = record
    return seen


async def test_the_frontend_reaches_the_backend_through_its_tunnel(tmp_path):
    profiles, _, _ = _profiles(tmp_path)
    env = {LOGS_ENV: str(tmp_path / "logs")}
    async with molehill_process(
        "start", "frontend", "--profiles", profiles, "--http", "127.0.0.1:0", "--json",
        "--api", "127.0.0.1:0", "--no-capture", env=env,
    ) as run:  # fmt: skip
        relay = json.loads(await run.line())["url"]  # http://NAME.localhost:PORT
        port = relay.rsplit(":", 1)[1]
        # backend came along: the frontend refers to it, so its tunnel and command start first.
        await _app_events(run, {"backend": "ready", "frontend": "ready"})
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as visitor:
            page = await visitor.get("/", headers={"Host": f"frontend.localhost:{port}"})
        assert page.status_code == 200, page.text
        answer = page.json()
        assert answer["api_url"] == f"http://backend.localhost:{port}"
        assert answer["backend"] == {
            "status": 200,
            "body": {"hello": "from the backend", "host": f"backend.localhost:{port}"},
        }  # through the relay: the backend saw its public Host

        # `molehill logs backend` from another terminal, following.
        follower = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tui.cli", "logs", "backend", "-f", "--profiles", profiles,
            env=molehill_env(env), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as visitor:
                await visitor.get(
                    "/api/hello?marker=1", headers={"Host": f"backend.localhost:{port}"}
                )
            assert follower.stdout is not None
            async with asyncio.timeout(10):
                while b"marker=1" not in await follower.stdout.readline():
                    pass
        finally:
            follower.terminate()
            await follower.wait()
        assert await run.terminate() == 0
        rest = [json.loads(line) for line in (await run.proc.stdout.read()).decode().splitlines()]
        assert {(r["profile"], r["state"]) for r in rest if r.get("event") == "app"} == {
            ("backend", "stopped"), ("frontend", "stopped")
        }  # fmt: skip


async def test_a_command_killed_from_outside_is_reported_with_its_last_lines(tmp_path):
    path = tmp_path / "profiles.toml"
    path.write_text(
        f"[profiles.web]\nport = {free_port()}\n"
        "command = \"echo warming up; echo 'fatal: config missing' >&2; exec sleep 60\"\n"
    )
    env = {LOGS_ENV: str(tmp_path / "logs")}
    async with molehill_process(
        "start", "web", "--profiles", str(path), "--http", "127.0.0.1:0", "--no-api",
        "--no-capture", env=env,
    ) as run:  # fmt: skip
        pid = int((await run.line_matching(r"\[web\] app starting \(pid (\d+)\)")).group(1))
        await asyncio.sleep(0.3)  # let it print
        os.kill(pid, signal.SIGKILL)
        await run.line_matching(r"\[web\] app killed by signal 9 \(SIGKILL\); its last lines:")
        assert await run.line() == "[web]   | warming up"
        assert await run.line() == "[web]   | fatal: config missing"
        assert await run.terminate() == 0


async def test_env_prints_the_resolved_variables(tmp_path):
    profiles, _, _ = _profiles(tmp_path)
    done = await run_molehill("env", "frontend", "--profiles", profiles)
    # No molehill is running on 4040-4050 in the tests' own profiles: computed for the
    # embedded relay, and the output says so.
    if "from the running molehill" in done.out:  # another molehill on this machine has one
        assert "export API_URL=" in done.out
    else:
        assert "export API_URL=http://backend.localhost:8080" in done.out
        assert "# backend.url: http://backend.localhost:8080 (computed" in done.out
    as_json = json.loads(
        (await run_molehill("env", "frontend", "--json", "--profiles", profiles)).out
    )
    assert as_json["env"]["API_URL"].startswith("http://backend.")
    unknown = await run_molehill("env", "nope", "--profiles", profiles)
    assert unknown.code != 0 and "nope" in unknown.err


async def test_logs_says_what_to_do_when_there_is_nothing(tmp_path):
    profiles, _, _ = _profiles(tmp_path)
    done = await run_molehill(
        "logs", "backend", "--profiles", profiles, env={LOGS_ENV: str(tmp_path)}
    )
    assert done.code == 1
    assert "its command has not run; `molehill start backend` runs it" in done.err


async def test_visitors_before_ready_get_the_502_page_then_the_app(tmp_path):
    port = free_port()
    path = tmp_path / "profiles.toml"
    path.write_text(
        f'[profiles.slow]\nport = {port}\ncommand = "sleep 2; exec '
        f'{app_command("backend_app.py", port)}"\nhealth = "/healthz"\n'
    )
    async with molehill_process(
        "start", "slow", "--profiles", str(path), "--http", "127.0.0.1:0", "--json", "--no-api",
        "--no-capture", env={LOGS_ENV: str(tmp_path / "logs")},
    ) as run:  # fmt: skip
        relay_port = json.loads(await run.line())["url"].rsplit(":", 1)[1]
        seen = {}
        async with asyncio.timeout(10):
            while "tunnel_open" not in seen or "app" not in seen:
                record = json.loads(await run.line())
                seen[record["event"]] = record
        assert seen["app"]["state"] == "starting"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay_port}") as visitor:
            early = await visitor.get(
                "/api/hello", headers={"Host": f"slow.localhost:{relay_port}"}
            )
            assert early.status_code == 502 and "slow" in early.text
            await _app_events(run, {"slow": "ready"})
            late = await visitor.get("/api/hello", headers={"Host": f"slow.localhost:{relay_port}"})
            assert late.status_code == 200
        assert await run.terminate() == 0


async def test_env_reads_the_url_from_a_running_molehill(tmp_path):
    back = free_port()
    path = tmp_path / "profiles.toml"
    # Names no other molehill on this machine is likely to run.
    path.write_text(
        f"[profiles.envtest-back]\nport = {back}\n\n"
        "[profiles.envtest-front]\nport = 1\n"
        'env = { API_URL = "{envtest-back.url}/v1", API_PORT = "{envtest-back.port}" }\n'
    )
    async with molehill_process(
        "start", "envtest-back", "--profiles", str(path), "--http", "127.0.0.1:0", "--json",
        "--no-capture",  # the API on the first free port of 127.0.0.1:4040-4050
    ) as run:  # fmt: skip
        api = (await run.json_err_until(lambda e: e.get("event") == "api"))["url"]
        relay = json.loads(await run.line())["url"]
        assert json.loads(await run.line())["event"] == "tunnel_open"
        done = await run_molehill("env", "envtest-front", "--profiles", str(path))
        port = relay.rsplit(":", 1)[1]
        assert done.code == 0, done.err
        assert f"export API_URL=http://envtest-back.localhost:{port}/v1" in done.out
        assert f"export API_PORT={port}" in done.out
        assert f"(from the running molehill at {api})" in done.out
        assert await run.terminate() == 0
