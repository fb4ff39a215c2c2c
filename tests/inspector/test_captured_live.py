"""Traffic through a real `molehill http` lands in the capture store, redacted, and `molehill
requests` finds it by filter after the agent has quit; `--no-capture` keeps nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from tests.support.cli import ROOT, molehill_env, molehill_process
from tests.support.stack import running_relay

SECRET = "hunter2-planted-secret"


def requests_cli(store, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "requests", *args],
        cwd=ROOT,
        env=molehill_env({"MOLEHILL_CAPTURE_FILE": str(store)}),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def run_traffic(store, app_port: int, *flags: str) -> None:
    env = {"MOLEHILL_CAPTURE_FILE": str(store)}
    async with (
        running_relay() as relay,
        molehill_process(
            "http",
            str(app_port),
            "--relay",
            relay.agents_url,
            "--subdomain",
            "hooks",
            "--json",
            *flags,
            env=env,
        ) as agent,
    ):
        assert json.loads(await agent.line())["event"] == "tunnel_open"
        host = f"hooks.localhost:{relay.http_port}"
        async with httpx.AsyncClient(base_url=relay.http_url, headers={"Host": host}) as c:
            await c.post(
                "/echo/webhook",
                json={"event": "push", "password": SECRET},
                headers={"Authorization": f"Bearer {SECRET}", "X-GitHub-Event": "push"},
            )
            await c.get("/status/503")
        for _ in range(2):
            json.loads(await agent.line())
        assert await agent.terminate() == 0  # the writer stores what is queued before exit


async def test_exchanges_are_kept_redacted_and_found_by_filter_after_exit(tmp_path, app_port):
    store = tmp_path / "captures.sqlite3"
    await run_traffic(store, app_port)

    listed = requests_cli(store, "list", "--json", "--", "method:POST header:x-github-event=push")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["method"], r["path"], r["tunnel"]) for r in rows] == [
        ("POST", "/echo/webhook", "hooks")
    ]
    errors = requests_cli(store, "list", "--json", "status:5xx")
    assert [json.loads(line)["status"] for line in errors.stdout.splitlines()] == [503]

    shown = requests_cli(store, "show", str(rows[0]["id"]), "--json")
    assert shown.returncode == 0, shown.stderr
    assert '"push"' in shown.stdout  # the body is kept...
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert SECRET.encode() not in on_disk  # ...and the secrets are not, in the file or its WAL
    assert SECRET not in shown.stdout


async def test_no_capture_keeps_nothing(tmp_path, app_port):
    store = tmp_path / "captures.sqlite3"
    await run_traffic(store, app_port, "--no-capture")
    assert not store.exists()
