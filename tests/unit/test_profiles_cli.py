"""End-to-end tests of `molehill profiles ...`, in-process and as a real subprocess."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from profiles.model import Profile, ProfilesFile, RelaySettings
from profiles.paths import ENV_VAR
from profiles.store import HEADER, backup_path, load, save
from tui.commands.profiles import add_parser, run

REPO = Path(__file__).resolve().parents[2]


class Cli:
    """Runs the command in-process against one profiles file, as the dispatcher would."""

    def __init__(self, path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.path = path
        self.capsys = capsys

    def __call__(self, *argv: str, explicit: bool = True) -> tuple[int, str, str]:
        parser = argparse.ArgumentParser(prog="molehill")
        sub = parser.add_subparsers(dest="command")
        add_parser(sub)
        extra = ["--profiles", str(self.path)] if explicit else []
        args = parser.parse_args(["profiles", *argv, *extra])
        code = run(args)
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Never touch the real user config, whatever a test forgets to pass.
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env-profiles.toml"))
    return tmp_path / "profiles.toml"


@pytest.fixture
def cli(path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(path, capsys)


def run_module(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.commands.profiles", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=60,
    )


# -- path ----------------------------------------------------------------------------------------


def test_path_prints_explicit_path(cli: Cli, path: Path) -> None:
    assert cli("path") == (0, f"{path}\n", "")


def test_path_uses_environment_when_no_option(cli: Cli, tmp_path: Path) -> None:
    code, out, _ = cli("path", explicit=False)
    assert (code, out) == (0, f"{tmp_path / 'env-profiles.toml'}\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["--profiles", "{p}", "profiles", "path"],  # a global option the dispatcher may add
        ["profiles", "--profiles", "{p}", "path"],
        ["profiles", "path", "--profiles", "{p}"],
    ],
)
def test_profiles_option_works_in_every_position(
    argv: list[str], path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="molehill")
    parser.add_argument("--profiles", dest="profiles_path", default=None)
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args([a.replace("{p}", str(path)) for a in argv])
    assert run(args) == 0
    assert capsys.readouterr().out == f"{path}\n"


def test_parser_hands_the_dispatcher_its_run_function() -> None:
    parser = argparse.ArgumentParser(prog="molehill")
    add_parser(parser.add_subparsers(dest="command"))
    assert parser.parse_args(["profiles", "list"]).run is run


# -- list and show -------------------------------------------------------------------------------


def test_list_says_how_to_add_when_there_are_none(cli: Cli, path: Path) -> None:
    code, out, err = cli("list")
    assert code == 0 and err == ""
    assert f"no profiles yet in {path}" in out
    assert "molehill profiles add NAME --port PORT" in out
    assert not path.exists()  # listing never creates the file


def test_no_sub_command_means_list(cli: Cli) -> None:
    cli("add", "web", "--port", "80")
    code, out, _ = cli()
    assert code == 0 and "web" in out and "127.0.0.1:80" in out


def test_list_shows_a_table(cli: Cli, path: Path) -> None:
    save(
        ProfilesFile(
            profiles={
                "frontend": Profile("frontend", 3000),
                "backend": Profile("backend", 8000, subdomain="api", autostart=True),
            }
        ),
        path,
    )
    code, out, _ = cli("list")
    assert code == 0
    assert out.splitlines() == [
        "NAME      LOCAL           PUBLIC NAME  AUTOSTART",
        "frontend  127.0.0.1:3000  frontend     no",
        "backend   127.0.0.1:8000  api          yes",
    ]


def test_show_prints_every_field_and_hides_the_password(cli: Cli) -> None:
    cli(
        "add", "backend", "--port", "8000", "--host", "localhost", "--subdomain", "api",
        "--basic-auth", "admin:hunter2", "--allow", "10.0.0.0/8", "--allow", "::1",
        "--deny", "10.0.0.7", "--host-header", "backend.test", "--autostart",
    )  # fmt: skip
    code, out, _ = cli("show", "backend")
    assert code == 0
    fields = dict(line.split(":", 1) for line in out.splitlines())
    fields = {key: value.strip() for key, value in fields.items()}
    assert fields == {
        "name": "backend",
        "port": "8000",
        "host": "localhost",
        "subdomain": "api",
        "public name": "api",
        "basic_auth": "admin:***",
        "allow": "[10.0.0.0/8, ::1]",
        "deny": "[10.0.0.7]",
        "host_header": "backend.test",
        "autostart": "yes",
    }
    assert "hunter2" not in out
    _, revealed, _ = cli("show", "backend", "--show-secrets")
    assert "admin:hunter2" in revealed


def test_show_unknown_profile_exits_1(cli: Cli) -> None:
    cli("add", "web", "--port", "80")
    code, out, err = cli("show", "nope")
    assert (code, out) == (1, "")
    assert err == "molehill: no profile named 'nope' (known profiles: web)\n"


# -- add -----------------------------------------------------------------------------------------


def test_add_writes_the_file(cli: Cli, path: Path) -> None:
    code, out, err = cli("add", "frontend", "--port", "3000")
    assert (code, out, err) == (0, "added profile 'frontend' (127.0.0.1:3000 -> frontend)\n", "")
    code, out, _ = cli("add", "backend", "--port", "8000", "--subdomain", "api", "--autostart")
    assert out == "added profile 'backend' (127.0.0.1:8000 -> api)\n"
    assert load(path).file == ProfilesFile(
        profiles={
            "frontend": Profile("frontend", 3000),
            "backend": Profile("backend", 8000, subdomain="api", autostart=True),
        }
    )
    text = path.read_text()
    assert text.startswith(HEADER)
    assert '[profiles.backend]\nport = 8000\nsubdomain = "api"\nautostart = true\n' in text


def test_add_existing_name_exits_1_and_changes_nothing(cli: Cli, path: Path) -> None:
    cli("add", "web", "--port", "80")
    before = path.read_bytes()
    code, _, err = cli("add", "web", "--port", "81")
    assert code == 1
    assert "already exists" in err and "molehill profiles edit web" in err
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["web", "--port", "0"], "--port: must be from 1 to 65535, got 0"),
        (["web", "--port", "70000"], "--port: must be from 1 to 65535, got 70000"),
        (["Web", "--port", "80"], "the profile name 'Web'"),
        (["web", "--port", "80", "--subdomain=-www"], "starts with '-'"),
        (["a" * 64, "--port", "80"], "the limit is 63"),
        (["my_app", "--port", "80"], "try 'my-app'"),
        (["web", "--port", "80", "--subdomain", "W_W"], "--subdomain:"),
        (["web", "--port", "80", "--allow", "10.0.0.0/33"], "--allow:"),
        (["web", "--port", "80", "--basic-auth", "nopassword"], "--basic-auth:"),
        (["web", "--port", "80", "--host", "http://x"], "--host:"),
    ],
)
def test_add_invalid_values_exit_2_without_writing(
    cli: Cli, path: Path, argv: list[str], message: str
) -> None:
    code, out, err = cli("add", *argv)
    assert (code, out) == (2, "")
    assert err.startswith(f"molehill: cannot add profile '{argv[0]}'")
    assert message in err
    assert not path.exists()


def test_add_clashing_public_name_exits_2(cli: Cli, path: Path) -> None:
    cli("add", "backend", "--port", "8000", "--subdomain", "api")
    before = path.read_bytes()
    code, _, err = cli("add", "api", "--port", "9000")
    assert code == 2
    assert "--subdomain: public name 'api'" in err and "profile 'backend'" in err
    assert path.read_bytes() == before


def test_add_without_port_is_a_usage_error(cli: Cli) -> None:
    with pytest.raises(SystemExit) as exc:
        cli("add", "web")
    assert exc.value.code == 2


# -- edit ----------------------------------------------------------------------------------------


def test_edit_changes_only_the_given_settings(cli: Cli, path: Path) -> None:
    cli("add", "web", "--port", "80", "--subdomain", "www", "--basic-auth", "u:p", "--allow",
        "10.0.0.0/8", "--host-header", "web.test", "--autostart")  # fmt: skip
    code, out, err = cli("edit", "web", "--port", "8080", "--no-autostart", "--no-basic-auth")
    assert (code, err) == (0, "")
    assert out == (
        "updated profile 'web': port 80 -> 8080, basic_auth u:*** -> (not set), "
        "autostart yes -> no\n"
    )
    assert load(path).file.get("web") == Profile(
        "web", 8080, subdomain="www", allow=("10.0.0.0/8",), host_header="web.test"
    )
    code, _, _ = cli(
        "edit", "web", "--no-subdomain", "--allow", "192.168.0.0/16", "--deny", "192.168.0.9",
        "--no-host-header", "--host", "localhost",
    )  # fmt: skip
    assert code == 0
    assert load(path).file.get("web") == Profile(
        "web", 8080, host="localhost", allow=("192.168.0.0/16",), deny=("192.168.0.9",)
    )
    cli("edit", "web", "--no-allow", "--no-deny")
    assert load(path).file.get("web") == Profile("web", 8080, host="localhost")
    assert "allow" not in path.read_text()


def test_edit_keeps_profile_order(cli: Cli, path: Path) -> None:
    for name, port in [("a", "1"), ("b", "2"), ("c", "3")]:
        cli("add", name, "--port", port)
    cli("edit", "a", "--port", "10")
    assert load(path).file.names() == ["a", "b", "c"]


def test_edit_without_options_exits_2(cli: Cli, path: Path) -> None:
    cli("add", "web", "--port", "80")
    before = path.read_bytes()
    code, _, err = cli("edit", "web")
    assert code == 2 and "nothing to change" in err
    assert path.read_bytes() == before


def test_edit_to_the_same_values_does_not_write(cli: Cli, path: Path) -> None:
    cli("add", "web", "--port", "80")
    before = path.stat().st_mtime_ns, path.read_bytes()
    assert cli("edit", "web", "--port", "80") == (0, "profile 'web' is unchanged\n", "")
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before


def test_edit_unknown_profile_exits_1(cli: Cli) -> None:
    code, _, err = cli("edit", "ghost", "--port", "80")
    assert code == 1 and "no profile named 'ghost'" in err and "add one with" in err


def test_edit_invalid_value_exits_2_and_changes_nothing(cli: Cli, path: Path) -> None:
    cli("add", "frontend", "--port", "3000")
    cli("add", "backend", "--port", "8000")
    before = path.read_bytes()
    code, _, err = cli("edit", "backend", "--subdomain", "frontend")
    assert code == 2 and "already asked for by profile 'frontend'" in err
    code, _, err = cli("edit", "backend", "--port", "65536")
    assert code == 2 and "--port: must be from 1 to 65535" in err
    assert path.read_bytes() == before


def test_edit_conflicting_options_is_a_usage_error(cli: Cli) -> None:
    with pytest.raises(SystemExit) as exc:
        cli("edit", "web", "--autostart", "--no-autostart")
    assert exc.value.code == 2


# -- remove --------------------------------------------------------------------------------------


def test_remove_deletes_the_profile_and_keeps_a_backup(cli: Cli, path: Path) -> None:
    cli("add", "frontend", "--port", "3000")
    cli("add", "backend", "--port", "8000")
    before = path.read_bytes()
    code, out, _ = cli("remove", "frontend")
    assert (code, out) == (0, "removed profile 'frontend' (127.0.0.1:3000 -> frontend)\n")
    assert load(path).file.names() == ["backend"]
    assert backup_path(path).read_bytes() == before


def test_remove_unknown_profile_exits_1(cli: Cli, path: Path) -> None:
    cli("add", "web", "--port", "80")
    before = path.read_bytes()
    code, _, err = cli("remove", "nope")
    assert code == 1 and err.startswith("molehill: no profile named 'nope'")
    assert path.read_bytes() == before


# -- set-relay -----------------------------------------------------------------------------------


def test_set_relay_writes_relay_table(cli: Cli, path: Path) -> None:
    code, out, _ = cli("set-relay", "--url", "wss://relay.example.com", "--token", "tok123")
    assert code == 0
    assert out == "updated relay settings: url -> wss://relay.example.com, token -> (set, hidden)\n"
    assert load(path).file.relay == RelaySettings("wss://relay.example.com", "tok123")
    code, out, _ = cli("set-relay")
    assert out == "url:   wss://relay.example.com\ntoken: (set, hidden)\n"
    cli("set-relay", "--no-token")
    assert load(path).file.relay == RelaySettings("wss://relay.example.com", None)


def test_set_relay_token_from_stdin(cli: Cli, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("from-stdin\n"))
    assert cli("set-relay", "--token", "-")[0] == 0
    assert load(path).file.relay.token == "from-stdin"


def test_set_relay_bad_url_exits_2(cli: Cli, path: Path) -> None:
    code, _, err = cli("set-relay", "--url", "https://relay.example.com")
    assert code == 2
    assert err.startswith("molehill: cannot set the relay: --url:")
    assert "ws:// or wss://" in err
    assert not path.exists()


# -- broken files are reported, never rewritten ----------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["list"], ["show", "web"], ["add", "api", "--port", "9"], ["remove", "web"],
     ["edit", "web", "--port", "1"], ["set-relay", "--url", "wss://x.example"]],
)  # fmt: skip
def test_broken_file_exits_2_and_is_untouched(cli: Cli, path: Path, argv: list[str]) -> None:
    path.write_bytes(b"[profiles.web]\nport = 80\nhost = localhost\n")
    before = path.read_bytes(), path.stat().st_mtime_ns
    code, out, err = cli(*argv)
    assert (code, out) == (2, "")
    assert err.startswith(f"molehill: {path}:3:")
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["profiles.toml"]


def test_invalid_file_exits_2_naming_profile_and_field(cli: Cli, path: Path) -> None:
    path.write_text("[profiles.web]\nport = true\n")
    code, _, err = cli("list")
    assert code == 2
    assert "[profiles.web] port: must be a whole number" in err


# -- as a real process ---------------------------------------------------------------------------


def test_module_runs_as_a_process_with_exit_codes(tmp_path: Path) -> None:
    path = str(tmp_path / "profiles.toml")
    added = run_module("profiles", "add", "web", "--port", "8080", "--profiles", path)
    assert added.returncode == 0, added.stderr
    assert added.stdout == "added profile 'web' (127.0.0.1:8080 -> web)\n"

    listed = run_module("profiles", "list", env={ENV_VAR: path})
    assert listed.returncode == 0 and "web" in listed.stdout

    missing = run_module("profiles", "--profiles", path, "remove", "nope")
    assert missing.returncode == 1
    assert missing.stderr.startswith("molehill: no profile named 'nope'")

    invalid = run_module("profiles", "add", "bad", "--port", "0", "--profiles", path)
    assert invalid.returncode == 2 and "--port" in invalid.stderr

    usage = run_module("profiles", "add", "noport", "--profiles", path)
    assert usage.returncode == 2 and "--port" in usage.stderr

    Path(path).write_text("[profiles\n")
    broken = run_module("profiles", "list", "--profiles", path)
    assert broken.returncode == 2
    assert broken.stderr.startswith(f"molehill: {path}:1:")
    assert Path(path).read_text() == "[profiles\n"
