"""The relay's config file: every key the guide documents is read, mistakes stop the relay with
exit code 2 and a message that names the key, and command-line flags win over the file."""

from __future__ import annotations

import re
import tomllib
from ipaddress import ip_network
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect

from relay.server import RelaySettings
from relay.server import config as relay_config
from relay.server.access import TokenEntry
from relay.server.config import ConfigError, load_config
from relay.wire import codec as p
from tests.relay.helpers import first_frame_of
from tests.support.cli import ROOT, molehill_process, run_molehill

GUIDE = ROOT / "docs" / "self-hosting.md"

EVERY_KEY = """\
domain = "tunnels.example.com"
http = "0.0.0.0:443"
agents = "[::]:7000"
public_port = 443
public_scheme = "https"
open = true
trusted_proxies = ["127.0.0.1/32", "::1"]
lease = 60
log_format = "json"

[tls]
cert = "/etc/molehill/fullchain.pem"
key = "/etc/molehill/privkey.pem"

[limits]
max_head = 32768
max_headers = 50
head_timeout = 10
idle_timeout = 600.5
connections_per_ip = 64
rate = 20
burst = 40
max_message = 8388608
streams_per_agent = 1000
ping_interval = 4
ping_timeout = 12
window = 131072

[[tokens]]
label = "alice"
hash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
names = ["alice-*", "demo"]
max_tunnels = 3
revoked = false
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(text)
    return path


def test_every_key_is_read(tmp_path):
    s = load_config(write(tmp_path, EVERY_KEY))
    assert (s.domain, s.public_port, s.public_scheme, s.open) == (
        "tunnels.example.com",
        443,
        "https",
        True,
    )
    assert (s.http_host, s.http_port, s.agents_host, s.agents_port) == ("0.0.0.0", 443, "::", 7000)
    assert s.trusted_proxies == [ip_network("127.0.0.1/32"), ip_network("::1/128")]
    assert (s.lease, s.log_format) == (60, "json")
    assert (s.tls_cert, s.tls_key) == ("/etc/molehill/fullchain.pem", "/etc/molehill/privkey.pem")
    limits = {
        "max_head": 32768,
        "max_headers": 50,
        "head_timeout": 10,
        "idle_timeout": 600.5,
        "connections_per_ip": 64,
        "rate": 20,
        "burst": 40,
        "max_message": 8388608,
        "streams_per_agent": 1000,
        "ping_interval": 4,
        "ping_timeout": 12,
        "window": 131072,
    }
    assert {key: getattr(s, key) for key in limits} == limits
    assert s.tokens == (TokenEntry("alice", "sha256:" + "0" * 64, ("alice-*", "demo"), 3, False),)
    assert s.config_path == str(tmp_path / "relay.toml")


def test_an_empty_file_means_the_defaults(tmp_path):
    s = load_config(write(tmp_path, ""))
    defaults = RelaySettings()
    for key in ("domain", "http_host", "http_port", "agents_host", "agents_port", "lease"):
        assert getattr(s, key) == getattr(defaults, key)


def documented_keys() -> set[str]:
    """Keys in the guide's config reference: the table rows that start with a `key`."""
    text = GUIDE.read_text()
    section = text.split("## The config file", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9_.\[\]]+)` \|", section, re.M))


def test_the_guide_documents_exactly_the_keys_the_relay_reads():
    code = {k for k in relay_config._TOP if k not in ("tls", "limits", "tokens", "cluster")}
    code |= {f"cluster.{k}" for k in relay_config._CLUSTER}
    code |= {f"tls.{k}" for k in relay_config._TLS}
    code |= {f"limits.{k}" for k in relay_config._LIMITS}
    code |= {f"[[tokens]].{k}" for k in relay_config._TOKEN}
    assert documented_keys() == code


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('colour = "red"\n', "unknown key 'colour'"),
        ('lease = "long"\n', "'lease' must be float, not str"),
        ('agents = "0.0.0.0"\n', "agents: expected HOST:PORT, got '0.0.0.0'"),
        ("[limits]\nmax_body = 1\n", "[limits]: unknown key 'max_body'"),
    ],
    ids=["unknown-key", "wrong-type", "bad-host-port", "unknown-limit"],
)
async def test_relay_command_exits_2_naming_the_key(tmp_path, text, says):
    path = write(tmp_path, text)
    done = await run_molehill("relay", "--config", str(path))
    assert done.code == 2
    assert says in done.err and str(path) in done.err
    assert "Traceback" not in done.err


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("open = 1\n", "'open' must be bool, not int"),
        ("public_port = 443.0\n", "'public_port' must be int, not float"),
        ('http = "127.0.0.1:99999"\n', "http: expected HOST:PORT"),
        ('http = "127.0.0.1:http"\n', "http: expected HOST:PORT"),
        ('public_scheme = "ftp"\n', "public_scheme must be 'http' or 'https'"),
        ('log_format = "xml"\n', "log_format must be 'text' or 'json'"),
        ('trusted_proxies = ["10.0.0.0/33"]\n', "trusted_proxies:"),
        ("[tls]\ncert = 'a.pem'\n", "set both cert and key"),
        ("[tls]\nca = 'x'\n", "[tls]: unknown key 'ca'"),
        ("[limits]\nrate = true\n", "'rate' must be float, not bool"),
        ("[limits]\nidle_timeout = -1\n", "'idle_timeout' cannot be negative"),
        ("[limits]\nwindow = 1.5\n", "'window' must be int, not float"),
        ('[[tokens]]\nlabel = "a"\n', "#1: needs 'label' and 'hash'"),
        ('[[tokens]]\nlabel = "a"\nhash = "abc"\n', "'hash' must look like 'sha256:...'"),
        ('[[tokens]]\nlabel = "a"\nhash = "sha256:1"\nname = ["x"]\n', "unknown key 'name'"),
        (
            '[[tokens]]\nlabel = "a"\nhash = "sha256:1"\n'
            '[[tokens]]\nlabel = "a"\nhash = "sha256:2"\n',
            "#2: the label 'a' is used twice",
        ),
        ("tokens = 3\n", "'tokens' must be list, not int"),
        ("domain = \n", "not valid TOML"),
    ],
)
def test_config_mistakes_name_the_key(tmp_path, text, says):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert says in str(info.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "text",
    [
        "[limits]\nwindow = 100\n",
        "[limits]\nping_interval = 0\n",
        "[limits]\nipv6_prefix = 16\n",  # a whole ISP counted as one client
        "[limits]\nipv6_prefix = 129\n",
    ],
)
def test_limits_that_no_agent_can_work_with_are_refused(tmp_path, text):
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, text))


def test_the_ipv6_prefix_is_read(tmp_path):
    assert load_config(write(tmp_path, "[limits]\nipv6_prefix = 56\n")).ipv6_prefix == 56
    assert load_config(write(tmp_path, "")).ipv6_prefix == 64


async def test_flags_override_the_file(tmp_path):
    path = write(
        tmp_path,
        'domain = "conf.example"\nhttp = "127.0.0.1:1"\nagents = "127.0.0.1:2"\nlease = 30\n'
        'log_format = "json"\n[limits]\nping_interval = 3\n',
    )
    args = ("--domain", "Flag.Example", "--http", "127.0.0.1:0", "--agents", "127.0.0.1:0")
    more = ("--lease", "7", "--ping-interval", "2", "--log-format", "text")
    async with molehill_process("relay", "--config", str(path), *args, *more) as relay:
        first = await relay.line()
        port = int(re.search(r"tunnels at http://NAME\.flag\.example:(\d+)$", first).group(1))
        agents = (await relay.line_matching(r"agents\s+(ws://\S+)")).group(1)
        async with ws_connect(agents) as ws:
            await ws.send(p.encode_message(p.Hello(p.VERSION, "flagged", "", "", 65536, {})))
            welcome = await first_frame_of(ws, p.Welcome)
        assert welcome.url == f"http://flagged.flag.example:{port}"
        assert (welcome.lease, welcome.ping_interval) == (7.0, 2.0)
        line = await relay.err_line()  # text, not JSON: the flag won
        assert "tunnel_online name=flagged" in line
        assert await relay.terminate() == 0


async def test_cert_and_key_flags_go_together():
    done = await run_molehill("relay", "--cert", "a.pem")
    assert done.code == 2 and "--cert and --key go together" in done.err


async def test_a_missing_certificate_is_named(tmp_path):
    missing = str(tmp_path / "fullchain.pem")
    done = await run_molehill(
        "relay", "--http", "127.0.0.1:0", "--agents", "127.0.0.1:0",
        "--cert", missing, "--key", missing,
    )  # fmt: skip
    assert done.code == 1
    assert "Traceback" not in done.err
    assert missing in done.err and "cannot listen" not in done.err


def documented_defaults() -> dict[str, object]:
    """The guide's default column, where it is one TOML value in backticks."""
    text = GUIDE.read_text().split("## The config file", 1)[1].split("\n## ", 1)[0]
    defaults = {}
    for key, default in re.findall(r"^\| `([a-z_.\[\]]+)` \| [^|]+ \| ([^|]+) \|", text, re.M):
        literal = re.fullmatch(r"`([^`]+)`", default.strip())
        if literal:
            defaults[key] = tomllib.loads(f"v = {literal.group(1)}")["v"]
    return defaults


def test_the_guide_gives_the_real_defaults():
    s = RelaySettings()
    token = TokenEntry("x", "sha256:")
    actual = {
        "domain": s.domain,
        "http": f"{s.http_host}:{s.http_port}",
        "agents": f"{s.agents_host}:{s.agents_port}",
        "open": s.open,
        "trusted_proxies": list(s.trusted_proxies),
        "lease": s.lease,
        "log_format": s.log_format,
        **{f"limits.{key}": getattr(s, key) for key in relay_config._LIMITS},
        "[[tokens]].names": list(token.names),
        "[[tokens]].max_tunnels": token.max_tunnels,
        "[[tokens]].revoked": token.revoked,
        "[[tokens]].ports": list(token.ports),
        "[[tokens]].max_tcp_ports": token.max_tcp_ports,
    }
    documented = documented_defaults()
    assert len(documented) >= 20
    assert {key: actual[key] for key in documented} == documented
