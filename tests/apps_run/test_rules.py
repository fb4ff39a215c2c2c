"""The sans-I/O parts: the app state table, [env] references and cycles, URL wiring, the
health check's reading of status lines, and the profile settings' validation messages."""

from __future__ import annotations

import tomllib

import pytest

from profiles.errors import InvalidProfiles
from profiles.model import ProfilesFile
from profiles.refs import Ref, RefError, parse_template, start_order
from runner.health import status_problem
from runner.state import DOWN, EXITED, READY, STARTING, STOPPED, AppState, describe_exit
from runner.wiring import missing, resolve, url_part


def test_the_state_machine_goes_starting_ready_down_exited_with_since():
    state = AppState().after("started", 1.0, "pid 7")
    assert (state.state, state.since) == (STARTING, 1.0)
    assert state.after("silent", 2.0, "no answer") is state  # not up yet: still starting
    ready = state.after("answered", 3.0)
    assert (ready.state, ready.since) == (READY, 3.0)
    assert ready.after("answered", 4.0) is ready  # nothing new: since stays
    down = ready.after("silent", 5.0, "refused")
    assert (down.state, down.detail) == (DOWN, "refused")
    exited = down.after("exited", 6.0, "exited with status 3", 3)
    assert (exited.state, exited.exit_code) == (EXITED, 3)
    assert exited.after("answered", 7.0) is exited  # another program on the port: still exited
    assert exited.after("stopped", 8.0).state == STOPPED
    with pytest.raises(ValueError, match="unknown happening"):
        state.after("exploded", 9.0)


def test_exit_statuses_read_as_people_say_them():
    assert describe_exit(0) == "exited with status 0"
    assert describe_exit(-9) == "killed by signal 9 (SIGKILL)"
    assert describe_exit(-200) == "killed by signal 200 (unknown)"


def test_templates_parse_references_and_literal_braces():
    assert parse_template("{backend.url}/api") == [Ref("backend", "url"), "/api"]
    assert parse_template("{{x}} {a.port}") == ["{", "x", "}", " ", Ref("a", "port")]
    assert parse_template("") == []


@pytest.mark.parametrize(
    "text",
    ["{backend}", "{backend.uri}", "{Backend.url}", "{", "}", "{a.url", "{a.url}}", "{ a.url }",
     "{a.b.url}", "{" * 1001],
)  # fmt: skip
def test_hostile_templates_are_refused_with_a_hint(text):
    with pytest.raises(RefError, match=r"PROFILE\.url|literal brace"):
        parse_template(text)


def test_wiring_fills_in_url_host_and_port():
    urls = {"backend": "https://api.example.com"}
    env = {"U": "{backend.url}/v1", "H": "{backend.host}", "P": "{backend.port}", "X": "plain"}
    assert resolve(env, urls) == {
        "U": "https://api.example.com/v1", "H": "api.example.com", "P": "443", "X": "plain"
    }  # fmt: skip
    assert url_part("http://b.localhost:8080", "port") == "8080"
    assert missing({"U": "{other.url}"}, urls) == ["other"]
    with pytest.raises(KeyError, match="other"):
        resolve({"U": "{other.url}"}, urls)


def test_start_order_puts_references_first():
    assert start_order({"front": ["back"], "back": [], "admin": ["front"]}) == [
        "back", "front", "admin"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        (b"HTTP/1.1 200 OK\r\n", True),
        (b"HTTP/1.0 302 Found\r\n", True),
        (b"HTTP/1.1 503 Service Unavailable\r\n", False),
        (b"", False),
        (b"SSH-2.0-OpenSSH\r\n", False),
        (b"HTTP/1.1 abc\r\n", False),
        (b"\xff\xfe" * 500, False),
    ],
)
def test_health_reads_status_lines_hostile_ones_included(line, ok):
    assert (status_problem(line, "/healthz") is None) is ok


def _problems(text: str) -> str:
    with pytest.raises(InvalidProfiles) as caught:
        ProfilesFile.from_toml(tomllib.loads(text))
    return str(caught.value)


def test_a_reference_to_an_unknown_profile_names_both():
    message = _problems('[profiles.front]\nport = 1\nenv = { API = "{back.url}" }\n')
    assert "[profiles.front] env: refers to profile 'back', which does not exist" in message


def test_a_cycle_names_both_profiles():
    message = _problems(
        '[profiles.a]\nport = 1\nenv = { X = "{b.url}" }\n'
        '[profiles.b]\nport = 2\nenv = { Y = "{a.host}" }\n'
    )
    assert "profiles 'a' and 'b' refer to each other's URLs (a -> b -> a)" in message
    assert message.count("each other") == 1  # one cycle, said once
    assert "refers to its own URL" in _problems('[profiles.a]\nport=1\nenv={X="{a.url}"}\n')


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("env = { API = 3 }", 'got the integer 3 (write it in quotes: API = "3")'),
        ("env = 'x'", "must be a table such as"),
        ('env = { "1BAD" = "x" }', "is not an environment variable name"),
        ('env = { API = "{b.uri}" }', "is not a reference"),
        ("command = 5", "must be a string, the shell command"),
        ('command = "  "', "must not be empty"),
        ('command = "x"\ncwd = 3', "cwd: must be a string, a directory"),
        ('cwd = "web"', "is the command's directory; set command too"),
        ('health = "healthz"', 'must be a path starting with "/"'),
        ('stop_grace = "5"', "must be a number of seconds"),
        ("stop_grace = 1000", "must be from 0 to 300 seconds"),
        ("comand = 'x'", "did you mean 'command'?"),
    ],
)  # fmt: skip
def test_bad_command_settings_are_refused_clearly(setting, words):
    assert words in _problems(f"[profiles.web]\nport = 3000\n{setting}\n")


def test_command_settings_round_trip_through_toml():
    text = (
        '[profiles.back]\nport = 8000\ncommand = "uvicorn app:app"\nhealth = "/healthz"\n'
        '[profiles.front]\nport = 5173\ncommand = "npm run dev"\ncwd = "web"\nstop_grace = 2\n'
        'env = { VITE_API_URL = "{back.url}" }\n'
    )
    file = ProfilesFile.from_toml(tomllib.loads(text))
    assert ProfilesFile.from_toml(file.to_toml()) == file
    assert "env" not in file.to_toml()["profiles"]["back"]
