"""The local API of a real `molehill http`: ngrok's jq idiom, listing, replay (with the in-memory
original), edits, diff, and the CLI's replay of the stored copy."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx

from tests.support.cli import ROOT, molehill_env, molehill_process
from tests.support.stack import running_relay

SECRET = "hunter2-planted-secret"


def requests_cli(store, *args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "requests", *args],
        cwd=ROOT,
        env=molehill_env({"MOLEHILL_CAPTURE_FILE": str(store), **(env or {})}),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def requests_cli_async(store, *args: str) -> tuple[int, str, str]:
    """The CLI without blocking this loop (the local app answers on it)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli", "requests", *args, cwd=ROOT,
        env=molehill_env({"MOLEHILL_CAPTURE_FILE": str(store)}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def api_url(agent) -> str:
    event = await agent.json_err_until(lambda e: e.get("event") == "api")
    return event["url"]


async def test_ngrok_idiom_list_replay_edit_and_diff(tmp_path, app_port):
    store = tmp_path / "captures.sqlite3"
    async with (
        running_relay() as relay,
        molehill_process(
            "http", str(app_port), "--relay", relay.agents_url, "--subdomain", "hooks",
            "--json", "--api", "127.0.0.1:0", env={"MOLEHILL_CAPTURE_FILE": str(store)},
        ) as agent,
    ):  # fmt: skip
        api = await api_url(agent)
        assert json.loads(await agent.line())["event"] == "tunnel_open"
        port = api.rsplit(":", 1)[1]
        command = f"curl -s localhost:{port}/api/tunnels | jq -r '.tunnels[0].public_url'"
        idiom = subprocess.run(
            ["bash", "-c", command],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert idiom.stdout.strip() == f"http://hooks.localhost:{relay.http_port}", idiom
        host = f"hooks.localhost:{relay.http_port}"
        async with httpx.AsyncClient(base_url=relay.http_url, headers={"Host": host}) as c:
            sent = await c.post(
                "/echo/webhook",
                json={"event": "push", "password": SECRET},
                headers={"Authorization": f"Bearer {SECRET}"},
            )
        assert sent.status_code == 200
        json.loads(await agent.line())
        async with httpx.AsyncClient(base_url=api) as c:
            listing = {}
            for _ in range(200):  # the store runs on idle CPU: seconds on a busy machine
                listing = (
                    await c.get("/api/requests/http", params={"filter": "method:POST"})
                ).json()
                if listing["requests"]:
                    break
                await asyncio.sleep(0.1)
            first = listing["requests"][0]
            assert first["tunnel_name"] == "hooks" and first["request"]["uri"] == "/echo/webhook"
            assert SECRET not in json.dumps(listing)
            one = (await c.get(f"/api/requests/http/{first['id']}")).json()
            assert one["response"]["status_code"] == 200

            # ngrok's replay call: 204, and the app got the original (secrets included).
            replayed = await c.post(
                "/api/requests/http", json={"id": first["id"], "tunnel_name": "hooks"}
            )
            assert replayed.status_code == 204
            mine = await c.post(f"/api/requests/http/{first['id']}/replay", json={})
            outcome = mine.json()
            assert mine.status_code == 200 and outcome["sent_original"] is True, outcome
            again = (await c.get(f"/api/requests/http/{outcome['id']}")).json()
            assert again["replay_of"] == first["id"]
            edited = await c.post(
                f"/api/requests/http/{first['id']}/replay",
                json={"edit": {"target": "/echo/edited", "body": '{"event": "ping"}'}},
            )
            edit_id = edited.json()["id"]
            bad = await c.post(
                f"/api/requests/http/{first['id']}/replay",
                json={"edit": {"message": "POST /x HTTP/1.1\nno colon here\n\n"}},
            )
            assert bad.status_code == 400 and "line 2" in bad.json()["msg"]
            har = (await c.get("/api/requests/http.har")).json()
            assert len(har["log"]["entries"]) >= 4
        # The app saw the original Authorization header in the in-process replay.
        assert await agent.terminate() == 0

    shown = requests_cli(store, "show", outcome["id"], "--json")
    assert '"replay_of": ' + first["id"] in shown.stdout
    diff = requests_cli(store, "diff", first["id"], edit_id, "--json")
    assert diff.returncode == 0, diff.stderr
    changes = json.loads(diff.stdout)["body"]["changes"]
    assert {
        "kind": "changed",
        "where": "path",
        "old": "/echo/webhook",
        "new": "/echo/edited",
    } in changes
    # From another process the stored (redacted) copy is what there is: sent with a warning.
    code, out, err = await requests_cli_async(
        store, "replay", first["id"], "--target", f"http://127.0.0.1:{app_port}"
    )
    assert code == 0, err
    assert "[redacted]" in err and "stored as #" in out
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert SECRET.encode() not in on_disk
