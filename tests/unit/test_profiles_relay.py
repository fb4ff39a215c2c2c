"""The profiles file's [relay] url as a list of cluster nodes: accepted, refused entry by entry
(the file never rewritten when broken), kept through save/load and `profiles set-relay`."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiles.errors import InvalidProfiles
from profiles.model import Profile, ProfilesFile
from profiles.paths import ENV_VAR
from profiles.relay import MAX_RELAY_URLS, RelaySettings
from profiles.store import load, save
from tests.unit.test_profiles_cli import Cli

A, B = "wss://a.example:7000", "ws://10.0.0.2:7000"


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env-profiles.toml"))  # never the user's file
    return tmp_path / "profiles.toml"


@pytest.fixture
def cli(path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(path, capsys)


def test_one_url_or_a_list_of_them():
    assert RelaySettings(A).urls == (A,) and RelaySettings(A).first_url == A
    listed = RelaySettings([A, B])  # type: ignore[arg-type]  # a TOML array arrives as a list
    assert listed.url == (A, B) and listed.urls == (A, B) and listed.first_url == A
    assert RelaySettings().urls == () and RelaySettings().first_url is None
    assert hash(listed) == hash(RelaySettings((A, B)))  # frozen, hashable: a tuple


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ([], "is an empty list"),
        ([A, "http://b.example"], "entry 2: 'http://b.example' must start with ws:// or wss://"),
        ([A, 7000], "entry 2: must be a string, got the integer"),
        ([A, None], "entry 2: must be a string"),
        ([[A]], "entry 1: must be a string, got an array"),
        ([A, {"url": B}], "entry 2: must be a string"),
        ([A, A], "entry 2: 'wss://a.example:7000' is listed twice"),
        (["ws://", "ws://a b"], "entry 1: 'ws://' has no host name; use e.g."),
        ([f"ws://n{i}.example" for i in range(MAX_RELAY_URLS + 1)], "at most 8"),
        ([f"ws://n{i}.example" for i in range(100_000)], "lists 100000 URLs"),
    ],
)
def test_bad_entries_are_named(url: object, says: str):
    with pytest.raises(InvalidProfiles) as caught:
        RelaySettings(url)  # type: ignore[arg-type]
    assert [(p.table, p.key) for p in caught.value.problems] == [("relay", "url")]
    assert says in caught.value.problems[0].message, caught.value.problems[0].message


def test_a_list_survives_save_and_load_and_a_bad_one_is_never_rewritten(path: Path):
    file = ProfilesFile(RelaySettings((A, B), "tok"), {"web": Profile("web", 3000)})
    save(file, path)
    assert 'url = [\n    "wss://a.example:7000",\n    "ws://10.0.0.2:7000",\n]' in path.read_text()
    loaded = load(path)
    assert loaded.file == file
    save(loaded.with_file(loaded.file.with_replaced(Profile("web", 3001))))  # an edit elsewhere
    assert load(path).file.relay == RelaySettings((A, B), "tok")

    path.write_text(f'[relay]\nurl = ["{A}", "ftp://x", 3]\n')
    before = path.read_bytes()
    with pytest.raises(InvalidProfiles) as caught:
        load(path)
    message = str(caught.value)
    assert "entry 2: 'ftp://x' must start with ws://" in message and "entry 3:" in message
    assert path.read_bytes() == before


def test_set_relay_takes_url_more_than_once(cli: Cli, path: Path):
    code, out, _ = cli("set-relay", "--url", A, "--url", B)
    assert code == 0 and out == f"updated relay settings: url -> [{A}, {B}]\n"
    assert load(path).file.relay.urls == (A, B)
    assert cli("set-relay")[1] == f"url:   [{A}, {B}]\ntoken: (not set)\n"
    assert cli("set-relay", "--token", "t")[0] == 0  # the list is kept
    assert load(path).file.relay == RelaySettings((A, B), "t")
    assert cli("set-relay", "--url", A)[0] == 0  # once: back to one URL, a string
    assert 'url = "wss://a.example:7000"' in path.read_text()

    code, _, err = cli("set-relay", "--url", A, "--url", "https://b.example")
    assert code == 2 and "--url: entry 2: 'https://b.example' must start with ws://" in err
    assert load(path).file.relay.url == A
