"""The dashboard's side: commands run beside a TunnelHost's tunnels; a changed backend
subdomain restarts the frontend's command with the new URL; a restart on demand; stop."""

from __future__ import annotations

import asyncio
import dataclasses

import httpx
import pytest

from profiles.model import Profile
from relay.agent import AgentSettings
from relay.host import TunnelHost
from relay.server import RelaySettings
from runner.hosted import HostedApps
from runner.output import LOGS_ENV
from runner.state import READY, STOPPED
from tests.apps_run.helpers import HERE, alive, app_command, eventually, free_port


@pytest.fixture
def host(tmp_path, monkeypatch):
    monkeypatch.setenv(LOGS_ENV, str(tmp_path / "logs"))
    host = TunnelHost(embedded=RelaySettings(http_port=0, agents_port=0))
    host.start()
    yield host
    host.stop()


def _settings(profile: Profile) -> AgentSettings:
    return AgentSettings(local_port=profile.port, name=profile.public_name, relay="")


async def _get(port: int, host: str, path: str = "/") -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as visitor:
        return await visitor.get(path, headers={"Host": host})


async def test_a_changed_backend_subdomain_restarts_the_frontend_with_the_new_url(host):
    back, front = free_port(), free_port()
    profiles = {
        "backend": Profile("backend", back, command=app_command("backend_app.py", back)),
        "frontend": Profile(
            "frontend", front, command=app_command("frontend_app.py", front),
            env={"API_URL": "{backend.url}"},
        ),
    }  # fmt: skip
    apps = HostedApps(host, lambda: profiles, HERE)
    relay_port = host.embedded.http_port
    host.start_tunnel("frontend", _settings(profiles["frontend"]))  # waits for backend's URL
    await eventually(lambda: apps.describe("frontend") == "app waits for backend")
    host.start_tunnel("backend", _settings(profiles["backend"]))
    await eventually(lambda: getattr(apps.state("frontend"), "state", None) == READY, timeout=15)
    first_pid = apps.runner.apps["frontend"].pid
    page = (await _get(relay_port, f"frontend.localhost:{relay_port}")).json()
    assert page["api_url"] == f"http://backend.localhost:{relay_port}"
    assert page["backend"]["status"] == 200

    # The backend's subdomain is edited: its tunnel comes back under the new name.
    profiles["backend"] = dataclasses.replace(profiles["backend"], subdomain="api2")
    host.restart_tunnel("backend", "backend", _settings(profiles["backend"]))
    new_url = f"http://api2.localhost:{relay_port}"

    async def frontend_uses_new_url() -> bool:
        try:
            answer = await _get(relay_port, f"frontend.localhost:{relay_port}")
            return answer.status_code == 200 and answer.json()["api_url"] == new_url
        except (httpx.HTTPError, ValueError):
            return False

    async with asyncio.timeout(20):
        while not await frontend_uses_new_url():
            await asyncio.sleep(0.1)
    assert apps.runner.apps["frontend"].pid != first_pid and not alive(first_pid)
    page = (await _get(relay_port, f"frontend.localhost:{relay_port}")).json()
    assert page["backend"]["body"]["host"] == f"api2.localhost:{relay_port}"
    assert any("a URL it refers to changed: restarting" in line for line in apps.lines("frontend"))

    # R: a restart on demand; x: the command stops with its tunnel.
    second = apps.runner.apps["frontend"].pid
    assert apps.restart("frontend") is None
    await eventually(lambda: apps.runner.apps["frontend"].pid not in (None, second))
    host.stop_tunnel("frontend")
    await eventually(lambda: apps.state("frontend").state == STOPPED)
    assert apps.describe("frontend").startswith("app stopped since ")
    await eventually(lambda: "app stopped" in host.drain().statuses["frontend"].app)
    assert "runs no command" in (apps.restart("nope") or "")


async def test_starting_the_frontend_starts_the_backend_it_refers_to(host):
    back, front = free_port(), free_port()
    profiles = {
        "backend": Profile("backend", back, command=app_command("backend_app.py", back)),
        "frontend": Profile(
            "frontend", front, command=app_command("frontend_app.py", front),
            env={"API_URL": "{backend.url}"},
        ),
    }  # fmt: skip
    apps = HostedApps(host, lambda: profiles, HERE, _settings)
    host.start_tunnel("frontend", _settings(profiles["frontend"]))
    for name in ("backend", "frontend"):
        await eventually(lambda n=name: getattr(apps.state(n), "state", None) == READY, timeout=15)
    relay_port = host.embedded.http_port
    page = (await _get(relay_port, f"frontend.localhost:{relay_port}")).json()
    assert page["backend"]["status"] == 200
