"""`molehill start` serves the local API with the profiles' tunnels, and a profile's
webhook_secrets re-sign replays through it; bad [webhook_secrets] tables are refused clearly."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

import httpx
import pytest

from profiles.errors import InvalidProfiles
from profiles.model import ProfilesFile
from tests.support.cli import molehill_process

GITHUB_SECRET = "gh-secret-for-tests"


async def test_start_serves_the_api_and_signs_with_the_profile_secret(tmp_path, app_port):
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(
        f"[profiles.web]\nport = {app_port}\n\n[profiles.web.webhook_secrets]\n"
        'github = "env:GH_SECRET"\n'
    )
    env = {"MOLEHILL_CAPTURE_FILE": str(tmp_path / "c.sqlite3"), "GH_SECRET": GITHUB_SECRET}
    async with molehill_process(
        "start", "web", "--profiles", str(profiles), "--http", "127.0.0.1:0", "--json",
        "--api", "127.0.0.1:0", env=env,
    ) as run:  # fmt: skip
        api = (await run.json_err_until(lambda e: e.get("event") == "api"))["url"]
        relay_url = json.loads(await run.line())["url"]
        assert json.loads(await run.line())["event"] == "tunnel_open"
        async with httpx.AsyncClient(base_url=api) as c:
            tunnels = (await c.get("/api/tunnels")).json()["tunnels"]
            assert [(t["name"], t["config"]["addr"]) for t in tunnels] == [
                ("web", f"http://127.0.0.1:{app_port}")
            ]
            assert (await c.get("/api/tunnels/web")).json()["public_url"] == tunnels[0][
                "public_url"
            ]
            assert (await c.get("/api/tunnels/nope")).status_code == 404
            port = relay_url.rsplit(":", 1)[1]
            host = f"web.localhost:{port}"
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as visitor:
                sent = hmac.new(GITHUB_SECRET.encode(), b'{"zen":"x"}', hashlib.sha256)
                await visitor.post(
                    "/echo/gh", content=b'{"zen":"x"}', headers={
                        "Host": host, "X-Hub-Signature-256": f"sha256={sent.hexdigest()}",
                    },
                )  # fmt: skip
            json.loads(await run.line())
            found: list = []
            # The store runs on idle CPU only: on a busy machine the row comes seconds later.
            for _ in range(200):
                found = (await c.get("/api/requests/http?tunnel_name=web")).json()["requests"]
                if found:
                    break
                await asyncio.sleep(0.1)
            # GitHub's signature has no timestamp: an edited body shows the profile's secret
            # signing afresh (re-signing checks the captured signature first).
            answer = (
                await c.post(
                    f"/api/requests/http/{found[0]['id']}/replay",
                    json={"edit": {"body": '{"zen":"y"}'}},
                )
            ).json()
            assert answer["status_code"] == 200, answer
            replayed = (await c.get(f"/api/requests/http/{answer['id']}")).json()
        echoed = json.loads(base64.b64decode(replayed["response"]["raw"]).split(b"\r\n\r\n", 1)[1])
        signature = dict((k.lower(), v) for k, v in echoed["headers"])["x-hub-signature-256"]
        expected = hmac.new(GITHUB_SECRET.encode(), b'{"zen":"y"}', hashlib.sha256).hexdigest()
        assert signature == f"sha256={expected}"
        assert await run.terminate() == 0


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ("'x'", "must be a table"),
        ("{ strpe = 'x' }", "did you mean 'stripe'"),
        ("{ github = 3 }", "must be a string"),
        ("{ github = '' }", "must not be empty"),
        ("{ github = 'env:NOT A NAME' }", "not an environment variable name"),
        ('{ github = "a\\nb" }', "control characters"),
    ],
)
def test_bad_webhook_secrets_tables_are_refused(table, words):
    import tomllib

    document = tomllib.loads(f"[profiles.web]\nport = 3000\nwebhook_secrets = {table}\n")
    with pytest.raises(InvalidProfiles, match=words) as caught:
        ProfilesFile.from_toml(document)
    assert "[profiles.web] webhook_secrets" in str(caught.value)


def test_a_secret_written_on_the_command_line_is_warned_about(capsys):
    import argparse

    from tui.local_api import api_options

    def options(*flags: str) -> dict[str, str]:
        args = argparse.Namespace(webhook_secret=list(flags), no_api=False, api=None)
        found = api_options(args)
        assert found is not None
        return found.webhook_secrets

    assert options("github=env:GH_SECRET") == {"github": "env:GH_SECRET"}
    assert capsys.readouterr().err == ""
    assert options("stripe=whsec_abc", "github=env:GH") == {
        "stripe": "whsec_abc",
        "github": "env:GH",
    }
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "the stripe webhook secret" in err
    assert "whsec_abc" not in err
