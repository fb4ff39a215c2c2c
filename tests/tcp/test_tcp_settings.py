"""TCP tunnel settings: the relay's config keys and flags, token ports and limits, profiles,
and the `molehill tcp` / `molehill start` commands."""

from __future__ import annotations

import json
import textwrap

import pytest

from profiles.errors import InvalidProfiles
from profiles.model import Profile, ProfilesFile
from relay.server.config import ConfigError, load_config
from relay.server.tcp_ports import PortRange
from tests.relay.helpers import make_token, refusal
from tests.support.cli import molehill_process
from tests.support.stack import agent_for, running_relay
from tests.tcp.support import echo, local_service, port_block, public_port
from tui.cli import main


def write(tmp_path, text: str):
    path = tmp_path / "relay.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_config_reads_tcp_ports_idle_timeout_and_token_ports(tmp_path):
    settings = load_config(
        write(
            tmp_path,
            """
            tcp_ports = "20000-20999"
            [limits]
            tcp_idle_timeout = 60
            [[tokens]]
            label = "alice"
            hash = "sha256:00"
            ports = [20001, 20002]
            max_tcp_ports = 2
            """,
        )
    )
    assert settings.tcp_ports == PortRange(20000, 20999)
    assert settings.tcp_idle_timeout == 60
    (alice,) = settings.tokens
    assert alice.ports == (20001, 20002)
    assert alice.max_tcp_ports == 2


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('tcp_ports = "lots"', "tcp_ports: 'lots' is not a port range like 20000-20999"),
        ('tcp_ports = "2000-1000"', "tcp_ports"),
        ("tcp_ports = 20000", "'tcp_ports' must be str"),
        ("[limits]\ntcp_idle_timeout = -1", "cannot be negative"),
        ('[[tokens]]\nlabel = "a"\nhash = "sha256:0"\nports = ["x"]', "'ports' must be a list"),
        ('[[tokens]]\nlabel = "a"\nhash = "sha256:0"\nports = [70000]', "'ports' must be a list"),
        ('[[tokens]]\nlabel = "a"\nhash = "sha256:0"\nmax_tcp_ports = -2', "cannot be negative"),
    ],
)
def test_config_refuses_bad_tcp_settings_and_says_which(tmp_path, text, says):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text))
    assert says in str(error.value)


def exit_and_stderr(capsys, *argv: str) -> tuple[int, str]:
    """Run the command line in this process (these refusals come before any I/O)."""
    try:
        code = main(list(argv))
    except SystemExit as stop:  # argparse's refusals
        code = int(stop.code or 0)
    return code, capsys.readouterr().err


def test_relay_flag_refuses_a_bad_range(capsys):
    code, err = exit_and_stderr(capsys, "relay", "--tcp-ports", "9-1")
    assert code == 2
    assert "--tcp-ports" in err and "the first no higher than the last" in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["99999"], "is not a TCP target: the port must be 1-65535; use PORT or HOST:PORT"),
        (["db:x"], "is not a TCP target; use PORT or HOST:PORT"),
        ([":5432"], "is not a TCP target; use PORT or HOST:PORT"),
        (["http://localhost:5432"], "is not a TCP target (no scheme)"),
        (["5432", "--remote-port", "0"], "is not a port number"),
        (["5432", "--name", "Bad_Name"], "--name:"),
        (["5432", "--deny", "nope"], "--deny: 'nope' is not a network"),
    ],
)
def test_tcp_command_checks_its_arguments_before_connecting(capsys, args, says):
    code, err = exit_and_stderr(capsys, "tcp", *args)
    assert code == 2
    assert says in err


async def test_token_port_limits_and_reserved_ports():
    alice = make_token("alice", max_tcp_ports=1, ports=())
    bob = make_token("bob")
    ports = port_block()
    reserved = ports.first + 3
    carol = make_token("carol", ports=(reserved,))
    tokens = (alice.entry, bob.entry, carol.entry)
    async with (
        local_service(echo) as local,
        running_relay(tcp_ports=ports, tokens=tokens) as relay,
        agent_for(relay, local, protocol="tcp", token=alice.secret),
    ):
        refused = await refusal(relay, local, protocol="tcp", token=alice.secret)
        assert refused.code == "too_many_ports"
        refused = await refusal(
            relay, local, protocol="tcp", token=bob.secret, remote_port=reserved
        )
        assert refused.code == "port_reserved"
        async with agent_for(
            relay, local, protocol="tcp", token=carol.secret, remote_port=reserved
        ) as tunnel:
            assert public_port(tunnel) == reserved


def test_profiles_know_tcp_and_refuse_what_does_not_apply():
    profile = Profile("db", 5432, protocol="tcp", remote_port=20001)
    document = ProfilesFile(profiles={"db": profile}).to_toml()
    assert document == {"profiles": {"db": {"port": 5432, "protocol": "tcp", "remote_port": 20001}}}
    assert ProfilesFile.from_toml(document).get("db") == profile
    for fields, key in [
        ({"protocol": "tcp", "basic_auth": "a:b"}, "basic_auth"),
        ({"protocol": "tcp", "host_header": "x.test"}, "host_header"),
        ({"remote_port": 20001}, "remote_port"),
        ({"protocol": "ftp"}, "protocol"),
        ({"protocol": "tcp", "remote_port": 0}, "remote_port"),
    ]:
        with pytest.raises(InvalidProfiles) as error:
            Profile("db", 5432, **fields)
        assert [problem.key for problem in error.value.problems] == [key]


async def test_start_runs_a_tcp_profile_on_its_embedded_relay(tmp_path):
    path = tmp_path / "profiles.toml"
    path.write_text('[profiles.db]\nport = 1\nprotocol = "tcp"\n')
    async with local_service(echo) as local:
        path.write_text(f'[profiles.db]\nport = {local}\nprotocol = "tcp"\n')
        async with molehill_process(
            "start", "db", "--json", "--http", "127.0.0.1:0", "--profiles", str(path)
        ) as proc:
            relay_line = json.loads(await proc.line())
            assert relay_line["event"] == "relay"
            opened = json.loads(await proc.line())
            assert opened["event"] == "tunnel_open"
            assert opened["url"].startswith("tcp://localhost:2")
            assert await proc.terminate() == 0
