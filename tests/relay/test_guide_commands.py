"""The commands and files of docs/self-hosting.md, run here: the token commands exactly as the
guide prints them (against a temporary file), the relay started with deploy/relay.toml and
deploy/relay-behind-proxy.toml (loopback ports, a test certificate), the agent command, the
health check with curl, the systemd unit and the certbot deploy hook."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import ssl
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

from tests.support.cli import ROOT, molehill_process, require_program, run_molehill
from tui.cli import build_parser

GUIDE = ROOT / "docs" / "self-hosting.md"
DEPLOY = ROOT / "deploy"
DOMAIN = "tunnels.example.com"


def guide_lines(prefix: str) -> list[str]:
    """Lines of the guide's code blocks that, once `sudo -u molehill` and the install path are
    taken off, start with ``prefix``."""
    lines = []
    in_block = False
    for line in GUIDE.read_text().splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        command = line.strip()
        command = command.removeprefix("sudo -u molehill ").replace("/opt/molehill/.venv/bin/", "")
        if in_block and command.startswith(prefix):
            lines.append(command)
    return lines


def as_args(command: str, config: Path) -> list[str]:
    """A guide line as arguments for `molehill`, with the config file moved to ``config``."""
    words = shlex.split(command.replace("/etc/molehill/relay.toml", str(config)), comments=True)
    assert words[0] == "molehill"
    return words[1:]


async def test_token_commands_as_the_guide_prints_them(tmp_path):
    config = tmp_path / "relay.toml"
    commands = guide_lines("molehill relay token")
    assert [c.split()[3] for c in commands] == ["add", "add", "list", "revoke"]
    outputs = []
    for command in commands:
        done = await run_molehill(*as_args(command, config))
        assert done.code == 0, (command, done.err)
        outputs.append(done.out)
    assert re.fullmatch(r"mh_[A-Za-z0-9_-]{43}\n", outputs[0])
    assert re.search(r"^alice\s+active\s+-\s+alice-\*, demo$", outputs[2], re.M), outputs[2]
    assert re.search(r"^ci\s+active\s+2\s+-$", outputs[2], re.M), outputs[2]
    tokens = tomllib.loads(config.read_text())["tokens"]
    assert [(t["label"], t.get("revoked", False)) for t in tokens] == [
        ("alice", False),
        ("ci", True),
    ]


@pytest.fixture
def certs(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert(DOMAIN, f"*.{DOMAIN}", "127.0.0.1")
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "fullchain", "privkey")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    paths["fullchain"].write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(paths["privkey"]))
    return paths


def loopback_copy(name: str, tmp_path: Path, certs: dict[str, Path] | None = None) -> Path:
    """deploy/NAME with its listeners on loopback port 0 (and the test certificate)."""
    text = (DEPLOY / name).read_text()
    text = re.sub(r'^(http|agents) = "[^"]*"', r'\1 = "127.0.0.1:0"', text, flags=re.M)
    if certs:
        text = text.replace("/etc/molehill/tls/fullchain.pem", str(certs["fullchain"]))
        text = text.replace("/etc/molehill/tls/privkey.pem", str(certs["privkey"]))
    path = tmp_path / "relay.toml"
    path.write_text(text)
    return path


async def test_option_a_relay_toml_agent_and_health_check(tmp_path, certs, app_port):
    config = loopback_copy("relay.toml", tmp_path, certs)
    add = guide_lines("molehill relay token add alice")[0]
    token = (await run_molehill(*as_args(add, config))).out.strip()
    async with molehill_process("relay", "--config", str(config)) as relay:
        first = await relay.line()
        http_port = int(
            re.fullmatch(rf"molehill relay: tunnels at https://NAME\.{DOMAIN}:(\d+)", first).group(
                1
            )
        )
        assert re.fullmatch(rf"  public HTTPS https://127\.0\.0\.1:{http_port}", await relay.line())
        agents_line = await relay.line()
        agents = re.match(
            r"  agents       (wss://127\.0\.0\.1:\d+)  \(molehill http PORT --relay \1\)",
            agents_line,
        )
        assert agents, agents_line
        assert await relay.line() == "  agent tokens 1"
        agents_port = agents.group(1).rsplit(":", 1)[1]

        (command,) = guide_lines("molehill http 3000 --relay wss://")
        args = as_args(command, config)
        args[1] = str(app_port)
        args[args.index("--relay") + 1] = agents.group(1)
        args[args.index("--token") + 1] = token
        async with molehill_process(*args, "--ca", str(certs["ca"])) as agent:
            online = await agent.line()
            url = f"https://alice-demo.{DOMAIN}:{http_port}"
            assert online == f"tunnel 'alice-demo' online: {url} -> http://127.0.0.1:{app_port}"
            trust = ssl.create_default_context(cafile=str(certs["ca"]))
            async with httpx.AsyncClient(verify=trust) as client:
                response = await client.get(
                    f"https://127.0.0.1:{http_port}/echo",
                    headers={"Host": f"alice-demo.{DOMAIN}:{http_port}"},
                    extensions={"sni_hostname": f"alice-demo.{DOMAIN}"},
                )
            assert response.status_code == 200
            assert ["X-Forwarded-Proto", "https"] in response.json()["headers"]
            assert await agent.terminate() == 0

        if shutil.which("curl"):
            (health,) = [c for c in guide_lines("curl -fsS https://") if "/healthz" in c]
            words = shlex.split(health, comments=True)
            words[-1] = words[-1].replace(":7000", f":{agents_port}")
            resolve = f"{DOMAIN}:{agents_port}:127.0.0.1"
            done = subprocess.run(
                [*words, "--resolve", resolve, "--cacert", str(certs["ca"])],
                capture_output=True,
                text=True,
                timeout=10,
            )
            assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr
        lines = [await relay.err_line()]
        assert '"event": "tunnel_online"' in lines[0] and '"name": "alice-demo"' in lines[0]
        assert await relay.terminate() == 0


async def test_option_b_relay_toml_starts_and_answers_health_checks(tmp_path):
    config = loopback_copy("relay-behind-proxy.toml", tmp_path)
    async with molehill_process("relay", "--config", str(config)) as relay:
        assert await relay.line() == f"molehill relay: tunnels at https://NAME.{DOMAIN}"
        agents = (await relay.line_matching(r"agents\s+ws://127\.0\.0\.1:(\d+)")).group(1)
        assert await relay.line() == "  agent tokens none (open relay)"
        if shutil.which("curl"):
            for command in guide_lines("curl -fsS http://127.0.0.1:7000/"):
                words = shlex.split(command.replace(":7000", f":{agents}"), comments=True)
                done = subprocess.run(words, capture_output=True, text=True, timeout=10)
                assert done.returncode == 0, (command, done.stderr)
                assert done.stdout == "ok\n" or "molehill_tunnels 0" in done.stdout
        assert await relay.terminate() == 0


def unit_lines() -> list[tuple[str, str]]:
    pairs = []
    for line in (DEPLOY / "molehill-relay.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            pairs.append((key, value))
    return pairs


def test_systemd_unit():
    unit = dict(unit_lines())
    assert unit["User"] == unit["Group"] == "molehill"
    assert (
        unit["ExecStart"]
        == "/opt/molehill/.venv/bin/molehill relay --config /etc/molehill/relay.toml"
    )
    assert unit["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert unit["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert int(unit["LimitNOFILE"]) >= 65536
    assert unit["RestartPreventExitStatus"] == "2"
    args = build_parser().parse_args(shlex.split(unit["ExecStart"])[1:])
    assert args.config == "/etc/molehill/relay.toml" and args.command == "relay"


def test_systemd_unit_verifies(tmp_path):
    require_program("systemd-analyze")
    molehill = Path(sys.executable).parent / "molehill"
    if not molehill.exists():
        pytest.skip("no molehill script next to this Python")
    text = (DEPLOY / "molehill-relay.service").read_text()
    copy = tmp_path / "molehill-relay.service"
    copy.write_text(text.replace("/opt/molehill/.venv/bin/molehill", str(molehill)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr


def test_certbot_deploy_hook(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for tool in ("install", "systemctl"):
        stub = bin_dir / tool
        stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\n')
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    hook = str(DEPLOY / "certbot-deploy-hook.sh")
    assert os.access(hook, os.X_OK)
    lineage = f"/etc/letsencrypt/live/{DOMAIN}"
    done = subprocess.run(["sh", hook], env={**env, "RENEWED_LINEAGE": lineage}, timeout=10)
    assert done.returncode == 0
    copy = "install -o root -g molehill -m 0640"
    assert log.read_text().splitlines() == [
        "install -d -o root -g molehill -m 0750 /etc/molehill/tls",
        f"{copy} {lineage}/fullchain.pem /etc/molehill/tls/fullchain.pem",
        f"{copy} {lineage}/privkey.pem /etc/molehill/tls/privkey.pem",
        "systemctl try-reload-or-restart molehill-relay",
    ]
    log.unlink()
    other = "/etc/letsencrypt/live/www.example.org"
    done = subprocess.run(["sh", hook], env={**env, "RENEWED_LINEAGE": other}, timeout=10)
    assert done.returncode == 0 and not log.exists()


def test_the_guide_points_at_files_that_exist():
    text = GUIDE.read_text()
    tests = set(re.findall(r"tests/[a-z_/]+\.py", text))
    assert tests, "the guide names no test"
    missing = [t for t in sorted(tests) if not (ROOT / t).exists()]
    assert not missing
    links = set(re.findall(r"\]\(\.\./(deploy/[^)]+)\)", text))
    assert {"deploy/relay.toml", "deploy/molehill-relay.service", "deploy/Caddyfile"} <= links
    assert not [link for link in links if not (ROOT / link).exists()]
    # the guide quotes the shipped files as they are (comments aside)
    guide = {_setting(line) for line in text.splitlines()}
    for name in ("relay.toml", "relay-behind-proxy.toml", "Caddyfile", "nginx.conf"):
        for line in (DEPLOY / name).read_text().splitlines():
            if _setting(line):
                assert _setting(line) in guide, f"{name}: {line!r} is not in the guide"


def _setting(line: str) -> str:
    """A config line without its comment; "" for comments and blank lines."""
    if line.lstrip().startswith("#"):
        return ""
    return line.split(" #", 1)[0].rstrip()
