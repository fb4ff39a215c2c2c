"""A profile's command as a real process: states, output, exits, restarts, the stop's grace."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest

from runner.output import LOGS_ENV, log_path
from runner.state import EXITED, FAILED, READY, STARTING, STOPPED
from runner.supervisor import AppProcess
from tests.apps_run.helpers import HERE, alive, app_command, eventually, free_port


@pytest.fixture(autouse=True)
def logs_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv(LOGS_ENV, str(tmp_path / "logs"))


def _process(command: str, port: int = 1, **kwargs) -> tuple[AppProcess, list[str]]:
    seen: list[str] = []
    app = AppProcess(
        "web", command, HERE, host="127.0.0.1", port=port, check_every=0.1,
        on_change=lambda _, state: seen.append(state.state), **kwargs,
    )  # fmt: skip
    return app, seen


async def test_starting_until_the_health_path_answers_then_ready_and_stopped():
    port = free_port()
    os.environ["READY_AFTER"] = "0.8"  # /healthz answers 503 until then (the port answers at once)
    try:
        app, seen = _process(app_command("backend_app.py", port), port, health="/healthz")
        await app.start({})
    finally:
        del os.environ["READY_AFTER"]
    assert app.state.state == STARTING
    started = app.state.since
    await eventually(lambda: app.state.state == READY)
    assert app.state.since - started >= 0.7
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{port}/api/hello")).status_code == 200
    await app.stop()
    assert seen == [STARTING, READY, STOPPED]
    log = log_path("web").read_text()
    assert "backend listening on" in log and "GET /api/hello" in log and "stopped" in log


async def test_killed_from_outside_is_app_exited_with_its_last_lines_and_restarts():
    command = "echo one; echo two; echo 'last words' >&2; exec sleep 60"
    app, seen = _process(command)
    await app.start({"EXTRA": "x"})
    await eventually(lambda: "last words" in app.output.lines)
    first = app.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await eventually(lambda: app.state.state == EXITED)
    assert app.state.detail == "killed by signal 9 (SIGKILL)"
    assert app.state.exit_code == -9
    assert app.last_lines() == ["one", "two", "last words"]
    await app.start({"EXTRA": "x"})  # restart on demand
    assert app.state.state == STARTING and app.pid != first and app.running
    await app.stop()
    assert seen == [STARTING, EXITED, STOPPED, STARTING, STOPPED]  # a restart stops first


async def test_a_command_that_ignores_sigterm_is_killed_after_the_grace_with_its_group(tmp_path):
    pids = tmp_path / "pids"
    # The shell and a child both ignore SIGTERM; the child writes its pid so the test can look.
    command = f"trap '' TERM; sh -c 'trap \"\" TERM; echo $$ > {pids}; sleep 60' & sleep 60"
    app, _ = _process(command, stop_grace=0.6)
    await app.start({})
    child = int(await eventually(lambda: pids.exists() and pids.read_text().strip()))
    leader = app.pid
    assert leader is not None and alive(child)
    began = time.monotonic()
    await app.stop()
    took = time.monotonic() - began
    assert 0.5 <= took < 5, took
    assert not alive(child) and not alive(leader)  # no member of the group survives
    assert "still running 0.6s after SIGTERM: killed" in "\n".join(app.output.lines)


async def test_a_command_that_stops_on_sigterm_is_not_waited_for():
    app, _ = _process("exec sleep 60", stop_grace=5)
    await app.start({})
    began = time.monotonic()
    await app.stop()
    assert time.monotonic() - began < 2


async def test_the_environment_reaches_the_command_and_a_bad_cwd_fails_clearly(tmp_path):
    app, _ = _process('echo "API=$API_URL"; exec sleep 60')
    await app.start({"API_URL": "http://backend.localhost:8080"})
    await eventually(lambda: "API=http://backend.localhost:8080" in app.output.lines)
    await app.stop()
    bad = AppProcess("web", "true", tmp_path / "nope", host="127.0.0.1", port=1)
    await bad.start({})
    assert bad.state.state == FAILED
    assert "is not a directory; fix cwd in [profiles.web]" in bad.state.detail


async def test_hostile_output_is_kept_bounded():
    # A 1 MB line with no newline, invalid UTF-8, and more lines than the ring holds.
    command = (
        "head -c 1000000 /dev/zero | tr '\\0' x; printf '\\n\\377\\376\\n'; "
        "seq 1 3000; exec sleep 60"
    )
    app, _ = _process(command)
    await app.start({})
    await eventually(lambda: "3000" in app.output.lines)
    assert len(app.output.lines) <= 1000
    assert all(len(line) <= 8192 for line in app.output.lines)
    assert list(app.output.lines)[-3:] == ["2998", "2999", "3000"]
    await app.stop()
    logged = (await asyncio.to_thread(log_path("web").read_text)).splitlines()
    start = next(i for i, line in enumerate(logged) if line.startswith("x"))
    # The long line keeps its first 8192 characters; the lines after it are whole.
    assert logged[start : start + 4] == ["x" * 8192, "\ufffd\ufffd", "1", "2"]
