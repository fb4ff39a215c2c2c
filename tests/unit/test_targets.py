"""Local targets as users type them: every accepted form, and hostile or wrong ones refused with
a message that says what is accepted; the same forms in profiles."""

from __future__ import annotations

import tomllib

import pytest

from profiles.errors import InvalidProfiles
from profiles.model import Profile, ProfilesFile
from relay.http.targets import ACCEPTED, LocalTarget, TargetError, parse_target


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3000", LocalTarget("127.0.0.1", 3000)),
        ("localhost:3000", LocalTarget("localhost", 3000)),
        ("127.0.0.1:3000", LocalTarget("127.0.0.1", 3000)),
        ("http://localhost:3000", LocalTarget("localhost", 3000)),
        ("http://localhost:3000/", LocalTarget("localhost", 3000)),
        ("https://localhost:8443", LocalTarget("localhost", 8443, tls=True)),
        ("HTTPS://LocalHost:8443", LocalTarget("localhost", 8443, tls=True)),
        ("https://dev.test", LocalTarget("dev.test", 443, tls=True)),
        ("http://dev.test", LocalTarget("dev.test", 80)),
        ("[::1]:3000", LocalTarget("::1", 3000)),
        ("https://[::1]:8443", LocalTarget("::1", 8443, tls=True)),
        ("65535", LocalTarget("127.0.0.1", 65535)),
    ],
)
def test_accepted_forms(text: str, expected: LocalTarget) -> None:
    assert parse_target(text) == expected


def test_a_bare_port_takes_the_default_host() -> None:
    assert parse_target("8080", "::1") == LocalTarget("::1", 8080)
    assert parse_target("[::1]:8080").address == "[::1]:8080"


def test_url_and_address_spell_the_target_back() -> None:
    target = parse_target("https://[::1]:8443")
    assert target.address == "[::1]:8443"
    assert target.url == "https://[::1]:8443"
    assert parse_target("3000").url == "http://127.0.0.1:3000"


@pytest.mark.parametrize(
    "text",
    [
        "foo:bar",
        "",
        "localhost",
        "localhost:",
        ":3000",
        "0",
        "65536",
        "99999999999999999999999",
        "-1",
        "³",  # a digit to str.isdigit(), not to int()
        "٣٠٠٠",  # Arabic-Indic digits
        " 3000",
        "3000\n",
        "local host:3000",
        "evil\x1b[2J:3000",
        "::1:3000",  # IPv6 needs brackets
        "[::1]3000",
        "[::1",
        "http://:80",
        "http://user@localhost:3000",
        "x" * 10_000 + ":3000",
        "ftp://localhost:21",
        "ws://localhost:3000",
        "http://localhost:3000/app",
        "http://localhost:3000?x=1",
        "http://localhost:3000#top",
        "localhost:3000:4000",
    ],
)
def test_wrong_forms_say_what_is_accepted(text: str) -> None:
    with pytest.raises(TargetError) as exc:
        parse_target(text)
    message = str(exc.value)
    assert "is not a target" in message
    assert ACCEPTED in message
    assert "\n" not in message and "\x1b" not in message  # quoted with repr: one safe line
    assert len(message) < 300  # a 10 kB mistake is not echoed back whole


def test_the_message_users_see_for_foo_bar() -> None:
    with pytest.raises(TargetError) as exc:
        parse_target("foo:bar")
    assert str(exc.value) == (
        "'foo:bar' is not a target: use PORT, HOST:PORT, http://HOST:PORT or https://HOST:PORT"
    )


def test_a_wrong_scheme_and_a_path_are_named() -> None:
    with pytest.raises(TargetError, match="not ftp://"):
        parse_target("ftp://localhost:21")
    with pytest.raises(TargetError, match="no path"):
        parse_target("http://localhost:3000/app")
    with pytest.raises(TargetError, match="1-65535"):
        parse_target("70000")


# -- in profiles --------------------------------------------------------------------------------


def profiles(text: str) -> ProfilesFile:
    return ProfilesFile.from_toml(tomllib.loads(text))


def test_a_profile_target_sets_host_port_and_tls() -> None:
    file = profiles(
        '[profiles.web]\ntarget = "https://localhost:8443"\nlocal_insecure = true\n'
        '[profiles.api]\ntarget = "4000"\n'
        '[profiles.old]\nport = 5000\nhost = "::1"\n'
    )
    web, api, old = file.profiles.values()
    assert (web.host, web.port, web.tls, web.local_insecure) == ("localhost", 8443, True, True)
    assert web.local_url == "https://localhost:8443"
    assert (api.host, api.port, api.tls) == ("127.0.0.1", 4000, False)
    assert (old.host, old.port, old.tls) == ("::1", 5000, False)  # old files stay valid


def test_a_profile_target_round_trips_as_written() -> None:
    file = profiles('[profiles.web]\ntarget = "https://localhost:8443"\n')
    assert file.to_toml() == {"profiles": {"web": {"target": "https://localhost:8443"}}}
    assert ProfilesFile.from_toml(file.to_toml()) == file


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ('target = "foo:bar"', "target", "'foo:bar' is not a target: use PORT, HOST:PORT"),
        ("target = 3000", "target", "write it in quotes"),
        ('target = "3000"\nport = 3000', "target", "remove port and host, or target"),
        ('target = "3000"\nhost = "::1"', "target", "remove port and host, or target"),
        ('target = "http://localhost:3000"\nlocal_insecure = true', "local_insecure", "https"),
        ("port = 3000\nlocal_insecure = true", "local_insecure", "https"),
        ('target = "https://x:1"\nlocal_insecure = "yes"', "local_insecure", "true or false"),
        ('host = "localhost"', "port", "is required"),
    ],
)
def test_profile_target_problems_name_the_key_and_the_fix(text: str, key: str, words: str) -> None:
    with pytest.raises(InvalidProfiles) as exc:
        profiles(f"[profiles.web]\n{text}\n")
    found = [(p.key, p.message) for p in exc.value.problems]
    assert len(found) == 1, found  # one mistake, one message: no "port is required" echo
    assert found[0][0] == key
    assert words in found[0][1], found


def test_profile_built_in_code_with_a_target() -> None:
    profile = Profile("web", target="localhost:3000")
    assert (profile.host, profile.port, profile.local_address) == (
        "localhost",
        3000,
        "localhost:3000",
    )
