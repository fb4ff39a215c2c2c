"""Unit tests for the profile model and its validation (no files involved)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from profiles.errors import InvalidProfiles, ProfileAlreadyExists, ProfileNotFound
from profiles.model import Profile, ProfilesFile, RelaySettings
from profiles.validate import is_valid_label, label_problem

REPO = Path(__file__).resolve().parents[2]


def problem_keys(exc: pytest.ExceptionInfo[InvalidProfiles]) -> list[tuple[str, str | None]]:
    return [(p.table, p.key) for p in exc.value.problems]


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["a", "0", "frontend", "my-app", "app2", "x" * 63, "1-2-3"])
def test_valid_labels(label: str) -> None:
    assert is_valid_label(label)
    assert label_problem(label) is None


@pytest.mark.parametrize(
    ("label", "reason"),
    [
        ("", "empty"),
        ("Frontend", "try 'frontend'"),
        ("-api", "starts with '-'"),
        ("api-", "ends with '-'"),
        ("x" * 64, "64 characters long; the limit is 63"),
        ("my_app", "try 'my-app'"),
        ("a.b", "'.'"),
        ("café", "'é'"),
        ("has space", "' '"),
    ],
)
def test_invalid_labels_say_why(label: str, reason: str) -> None:
    assert not is_valid_label(label)
    problem = label_problem(label)
    assert problem is not None and reason in problem


def test_non_string_label_is_invalid() -> None:
    assert not is_valid_label(3)
    assert "must be a string" in (label_problem(None) or "")


# -- Profile -------------------------------------------------------------------------------------


def test_profile_defaults_and_public_name() -> None:
    profile = Profile("frontend", 3000)
    assert profile.host == "127.0.0.1"
    assert profile.subdomain is None
    assert profile.public_name == "frontend"
    assert profile.local_address == "127.0.0.1:3000"
    assert (profile.basic_auth, profile.allow, profile.deny) == (None, (), ())
    assert (profile.host_header, profile.autostart) == (None, False)
    assert Profile("backend", 8000, subdomain="api").public_name == "api"


def test_ipv6_host_is_bracketed_in_local_address() -> None:
    assert Profile("v6", 8080, host="::1").local_address == "[::1]:8080"


def test_lists_become_tuples_so_profiles_stay_immutable() -> None:
    profile = Profile("a", 1, allow=["10.0.0.0/8"], deny=["192.168.1.7"])  # type: ignore[arg-type]
    assert profile.allow == ("10.0.0.0/8",)
    assert profile.deny == ("192.168.1.7",)
    hash(profile)  # hashable: nothing mutable inside


@pytest.mark.parametrize(
    ("port", "message"),
    [
        (0, "from 1 to 65535, got 0"),
        (70000, "got 70000"),
        (-1, "got -1"),
        ("80", "without quotes"),
        (True, "the boolean true"),
        (False, "the boolean false"),
        (80.0, "the float"),
        (None, "is required"),
    ],
)
def test_bad_ports_are_rejected(port: object, message: str) -> None:
    with pytest.raises(InvalidProfiles) as exc:
        Profile("web", port)  # type: ignore[arg-type]
    assert problem_keys(exc) == [("profiles.web", "port")]
    assert message in str(exc.value)
    assert exc.value.exit_code == 2


@pytest.mark.parametrize("port", [1, 80, 65535])
def test_edge_ports_are_accepted(port: int) -> None:
    assert Profile("web", port).port == port


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("subdomain", "API", "try 'api'"),
        ("subdomain", "", "must not be empty"),
        ("host", "", "must not be empty"),
        ("host", "http://localhost", "looks like a URL"),
        ("host", "localhost:3000", "put the port in port"),
        ("host", "[::1]", "without brackets"),
        ("host", 127, "must be a string"),
        ("basic_auth", "nocolon", "no ':'"),
        ("basic_auth", ":pw", "user name"),
        ("basic_auth", "user:", "password"),
        ("allow", ["10.0.0.300/8"], "not an IP address or network"),
        ("allow", "10.0.0.0/8", "got a single string"),
        ("deny", [42], "must be strings"),
        ("host_header", "two words", "host name"),
        ("autostart", "yes", "true or false"),
        ("autostart", 1, "true or false"),
    ],
)
def test_bad_field_values_name_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidProfiles) as exc:
        Profile("web", 80, **{field: value})  # type: ignore[arg-type]
    assert problem_keys(exc) == [("profiles.web", field)]
    assert message in str(exc.value)


def test_valid_optional_fields_are_kept() -> None:
    profile = Profile(
        "web",
        80,
        host="::1",
        basic_auth="user:pa:ss",
        allow=("10.0.0.0/8", "2001:db8::/32", "10.1.2.3/8"),
        host_header="myapp.test:8080",
        autostart=True,
    )
    assert profile.basic_auth == "user:pa:ss"  # only the first ':' separates user and password
    assert "10.1.2.3/8" in profile.allow  # strict=False: host bits allowed, and kept as written


def test_invalid_profile_name_is_reported_on_its_table() -> None:
    with pytest.raises(InvalidProfiles) as exc:
        Profile("Front End", 80)
    assert problem_keys(exc) == [('profiles."Front End"', None)]
    assert "profile name" in str(exc.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidProfiles) as exc:
        Profile("web", 0, host="", autostart="no")  # type: ignore[arg-type]
    assert [key for _, key in problem_keys(exc)] == ["port", "host", "autostart"]


# -- RelaySettings -------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["ws://localhost:8765", "wss://relay.example.com/agent"])
def test_relay_urls_accepted(url: str) -> None:
    assert RelaySettings(url=url).url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://relay.example.com", "must start with ws:// or wss://"),
        ("relay.example.com", "must start with ws:// or wss://"),
        ("wss://", "no host name"),
        (443, "must be a string"),
    ],
)
def test_bad_relay_url(url: object, message: str) -> None:
    with pytest.raises(InvalidProfiles) as exc:
        RelaySettings(url=url)  # type: ignore[arg-type]
    assert problem_keys(exc) == [("relay", "url")]
    assert message in str(exc.value)


@pytest.mark.parametrize("token", ["", "with space", "line\nbreak", 12])
def test_bad_relay_token(token: object) -> None:
    with pytest.raises(InvalidProfiles) as exc:
        RelaySettings(token=token)  # type: ignore[arg-type]
    assert problem_keys(exc) == [("relay", "token")]


# -- ProfilesFile --------------------------------------------------------------------------------


def test_subdomain_equal_to_another_profiles_name_is_a_clash() -> None:
    with pytest.raises(InvalidProfiles) as exc:
        ProfilesFile(
            profiles={
                "frontend": Profile("frontend", 3000),
                "backend": Profile("backend", 8000, subdomain="frontend"),
            }
        )
    assert problem_keys(exc) == [("profiles.backend", "subdomain")]
    assert "'frontend'" in str(exc.value) and "already asked for" in str(exc.value)


def test_name_equal_to_an_earlier_subdomain_is_a_clash() -> None:
    with pytest.raises(InvalidProfiles) as exc:
        ProfilesFile(
            profiles={
                "backend": Profile("backend", 8000, subdomain="api"),
                "api": Profile("api", 9000),
            }
        )
    assert problem_keys(exc) == [("profiles.api", "subdomain")]
    assert "profile 'backend'" in str(exc.value)


def test_profile_keyed_under_another_name_is_rejected() -> None:
    with pytest.raises(InvalidProfiles):
        ProfilesFile(profiles={"a": Profile("b", 1)})


def test_profiles_file_copies_its_dict() -> None:
    profiles = {"a": Profile("a", 1)}
    file = ProfilesFile(profiles=profiles)
    profiles["b"] = Profile("b", 2)
    assert file.names() == ["a"]


def test_changes_return_new_validated_files_in_order() -> None:
    file = ProfilesFile().with_added(Profile("a", 1)).with_added(Profile("b", 2))
    assert file.names() == ["a", "b"]
    replaced = file.with_replaced(Profile("a", 10, autostart=True))
    assert replaced.names() == ["a", "b"]  # replacing keeps the place in the file
    assert replaced.get("a").port == 10
    assert file.get("a").port == 1  # the original is untouched
    assert replaced.autostart_profiles() == [Profile("a", 10, autostart=True)]
    assert replaced.without("a").names() == ["b"]
    relay = RelaySettings("wss://r.example.com", "t")
    assert file.with_relay(relay).relay == relay
    with pytest.raises(ProfileAlreadyExists):
        file.with_added(Profile("a", 5))
    with pytest.raises(ProfileNotFound, match="known profiles: a, b"):
        file.get("c")
    with pytest.raises(ProfileNotFound):
        file.without("c")
    with pytest.raises(InvalidProfiles):
        file.with_added(Profile("c", 3, subdomain="a"))


def test_to_toml_omits_defaults() -> None:
    file = ProfilesFile(
        profiles={
            "frontend": Profile("frontend", 3000),
            "backend": Profile("backend", 8000, subdomain="api", allow=("10.0.0.0/8",)),
        }
    )
    assert file.to_toml() == {
        "profiles": {
            "frontend": {"port": 3000},
            "backend": {"port": 8000, "subdomain": "api", "allow": ["10.0.0.0/8"]},
        }
    }
    assert ProfilesFile().to_toml() == {}


def test_from_toml_reports_unknown_keys_everywhere_with_suggestions() -> None:
    document = {
        "relays": {},
        "relay": {"url": "wss://r.example.com", "tokn": "x"},
        "profiles": {"web": {"port": 80, "subdomian": "www"}},
    }
    with pytest.raises(InvalidProfiles) as exc:
        ProfilesFile.from_toml(document)
    assert problem_keys(exc) == [
        ("", "relays"),
        ("relay", "tokn"),
        ("profiles.web", "subdomian"),
    ]
    message = str(exc.value)
    assert "did you mean 'relay'?" in message
    assert "did you mean 'token'?" in message
    assert "did you mean 'subdomain'?" in message


def test_from_toml_reports_wrong_table_types() -> None:
    with pytest.raises(InvalidProfiles) as exc:
        ProfilesFile.from_toml({"relay": "wss://x", "profiles": {"web": 80}})
    assert problem_keys(exc) == [("", "relay"), ("profiles.web", None)]
    with pytest.raises(InvalidProfiles) as exc:
        ProfilesFile.from_toml({"profiles": [1]})
    assert problem_keys(exc) == [("", "profiles")]


def test_from_toml_round_trips_to_toml() -> None:
    file = ProfilesFile(
        RelaySettings("wss://r.example.com", "secret"),
        {
            "web": Profile(
                "web",
                80,
                host="localhost",
                subdomain="www",
                basic_auth="u:p",
                allow=("10.0.0.0/8",),
                deny=("10.0.0.7",),
                host_header="web.test",
                autostart=True,
            )
        },
    )
    assert ProfilesFile.from_toml(file.to_toml()) == file


# -- package hygiene -------------------------------------------------------------------------------


def test_profiles_package_never_imports_textual_or_tui() -> None:
    code = (
        "import sys, profiles, profiles.model, profiles.store, profiles.paths, "
        "profiles.errors, profiles.validate\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'tui'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_every_profiles_module_has_a_one_line_docstring() -> None:
    for module in sorted((REPO / "profiles").glob("*.py")):
        docstring = ast.get_docstring(ast.parse(module.read_text()), clean=False)
        assert docstring, module
        assert "\n" not in docstring.split("\n\n")[0].strip(), module
