"""Tests for loading and saving real profiles files, and for where the file is found."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import platformdirs
import pytest

from profiles.errors import (
    InvalidProfiles,
    ProfilesChangedOnDisk,
    ProfilesFileUnreadable,
    ProfilesFileUnwritable,
    ProfilesSyntaxError,
)
from profiles.model import Profile, ProfilesFile, RelaySettings
from profiles.paths import ENV_VAR, resolve_profiles_path
from profiles.store import HEADER, LoadedProfiles, backup_path, load, render_profiles, save

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")

EVERY_FIELD = ProfilesFile(
    RelaySettings(url="wss://relay.example.com", token="s3cret-token"),
    {
        "frontend": Profile("frontend", 3000),
        "backend": Profile(
            "backend",
            8000,
            host="::1",
            subdomain="api",
            basic_auth="admin:pa ss:word",
            allow=("10.0.0.0/8", "2001:db8::/32"),
            deny=("10.0.0.7",),
            host_header="backend.internal:8000",
            autostart=True,
        ),
    },
)


def snapshot(path: Path) -> tuple[bytes, int]:
    """The file's bytes and mtime, to prove a failed operation did not touch it."""
    return path.read_bytes(), path.stat().st_mtime_ns


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# -- round trip ------------------------------------------------------------------------------------


def test_round_trip_of_every_field(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    saved = save(EVERY_FIELD, path)
    loaded = load(path)
    assert loaded.file == EVERY_FIELD
    assert list(loaded.file.profiles) == ["frontend", "backend"]  # file order kept
    assert loaded.fingerprint == saved.fingerprint
    text = path.read_text()
    assert text.startswith(HEADER)
    assert text.startswith("# molehill profiles. molehill writes this file")
    assert "comments and formatting added here are not kept" in text
    # Defaults are left out of the file.
    frontend_table = text.split("[profiles.frontend]\n")[1].split("\n\n")[0]
    assert frontend_table.strip() == "port = 3000"


def test_empty_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    save(ProfilesFile(), path)
    assert path.read_text() == HEADER
    assert load(path).file == ProfilesFile()


@posix_only
def test_saved_file_is_private_and_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "profiles.toml"
    save(EVERY_FIELD, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


@posix_only
def test_save_tightens_a_world_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text("[profiles.a]\nport = 1\n")
    path.chmod(0o644)
    loaded = load(path)
    save(loaded.with_file(loaded.file.with_added(Profile("b", 2))))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup_path(path).stat().st_mode) == 0o600


def test_backup_holds_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    hand_written = b"# my notes\n[profiles.a]\nport = 1\n"
    path.write_bytes(hand_written)
    loaded = load(path)
    saved = save(loaded.with_file(loaded.file.with_added(Profile("b", 2))))
    assert backup_path(path) == tmp_path / "profiles.toml.bak"
    assert backup_path(path).read_bytes() == hand_written
    first_save = path.read_bytes()
    # A second save from the returned LoadedProfiles works and backs up the first save.
    save(saved.with_file(saved.file.without("a")))
    assert backup_path(path).read_bytes() == first_save
    assert load(path).file.names() == ["b"]
    assert leftovers(tmp_path) == []


def test_missing_file_loads_empty_and_load_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "profiles.toml"
    loaded = load(path)
    assert loaded.file == ProfilesFile()
    assert loaded.fingerprint is None
    assert loaded.path == path
    assert not path.parent.exists()


def test_fingerprint_records_mtime_size_and_hash(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_bytes(b"[profiles.a]\nport = 1\n")
    fingerprint = load(path).fingerprint
    assert fingerprint is not None
    assert fingerprint.size == path.stat().st_size
    assert fingerprint.mtime_ns == path.stat().st_mtime_ns
    assert len(fingerprint.sha256) == 64


# -- bad content: reported, never rewritten ------------------------------------------------------


def test_syntax_error_names_path_line_and_column_and_leaves_file(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_bytes(b"[profiles.web]\nport = 80\nhost = \n")
    before = snapshot(path)
    with pytest.raises(ProfilesSyntaxError) as exc:
        load(path)
    assert (exc.value.line, exc.value.column) == (3, 8)
    message = str(exc.value)
    assert message.startswith(f"{path}:3:8: not valid TOML")
    assert "host = " in message  # the offending line is quoted
    assert exc.value.exit_code == 2
    assert snapshot(path) == before
    assert not backup_path(path).exists()


def test_syntax_error_at_end_of_file(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_bytes(b'[profiles.web]\nallow = ["10.0.0.0/8"')
    with pytest.raises(ProfilesSyntaxError) as exc:
        load(path)
    assert exc.value.line == 2
    assert str(path) in str(exc.value)


def test_file_that_is_not_utf8_is_a_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_bytes(b'[profiles.web]\nhost = "caf\xe9"\n')
    with pytest.raises(ProfilesSyntaxError) as exc:
        load(path)
    assert (exc.value.line, exc.value.column) == (2, 12)
    assert "UTF-8" in str(exc.value)


@pytest.mark.parametrize(
    ("content", "location", "message"),
    [
        ('[profiles.web]\nport = 80\nsubdomian = "www"\n', "[profiles.web] subdomian", "unknown"),
        ('colour = "blue"\n', "top level colour", "unknown key"),
        ('[relay]\nurl = "wss://x.example"\ntokens = "t"\n', "[relay] tokens", "token"),
        ('[profiles.web]\nport = "80"\n', "[profiles.web] port", "without quotes"),
        ("[profiles.web]\nport = true\n", "[profiles.web] port", "boolean true"),
        ("[profiles.web]\nport = 0\n", "[profiles.web] port", "got 0"),
        ("[profiles.web]\nport = 70000\n", "[profiles.web] port", "got 70000"),
        ("[profiles.web]\nhost = 'x'\n", "[profiles.web] port", "is required"),
        ("[profiles.Web]\nport = 80\n", "[profiles.Web]", "try 'web'"),
        ("[profiles.-web]\nport = 80\n", "[profiles.-web]", "starts with '-'"),
        (f"[profiles.{'a' * 64}]\nport = 80\n", "]: the profile name", "the limit is 63"),
        ("[profiles.my_app]\nport = 80\n", "[profiles.my_app]", "'_'"),
        ('[profiles.web]\nport = 80\nsubdomain = "W"\n', "[profiles.web] subdomain", "'w'"),
        (
            '[profiles.frontend]\nport = 1\n[profiles.backend]\nport = 2\nsubdomain = "frontend"',
            "[profiles.backend] subdomain",
            "already asked for by profile 'frontend'",
        ),
        ('[profiles.web]\nport = 80\nallow = ["10.0.0.0/33"]\n', "[profiles.web] allow", "CIDR"),
        ('[profiles.web]\nport = 80\ndeny = ["nope"]\n', "[profiles.web] deny", "not an IP"),
        ('[relay]\nurl = "https://relay.example.com"\n', "[relay] url", "ws:// or wss://"),
        ("[profiles.web]\nport = 80\nautostart = 1\n", "[profiles.web] autostart", "true or"),
        ("profiles = 3\n", "top level profiles", "[profiles.NAME]"),
    ],
)
def test_invalid_content_is_reported_and_file_left_alone(
    tmp_path: Path, content: str, location: str, message: str
) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text(content)
    before = snapshot(path)
    with pytest.raises(InvalidProfiles) as exc:
        load(path)
    text = str(exc.value)
    assert str(path) in text
    assert location in text
    if message == "CIDR":
        message = "not an IP address or network"
    assert message in text
    assert exc.value.exit_code == 2
    assert snapshot(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profiles.toml"]


def test_all_problems_in_a_file_are_reported_together(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text('[profiles.a]\nport = 0\n[profiles.b]\nport = "x"\n[relay]\nurl = "x"\n')
    with pytest.raises(InvalidProfiles) as exc:
        load(path)
    assert len(exc.value.problems) == 3
    assert "has 3 problems" in str(exc.value)


# -- I/O errors ------------------------------------------------------------------------------------


def test_directory_in_place_of_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.mkdir()
    with pytest.raises(ProfilesFileUnreadable) as exc:
        load(path)
    assert str(path) in str(exc.value)
    assert "directory" in str(exc.value)
    assert exc.value.exit_code == 1


def test_parent_that_is_a_file_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "config"
    blocker.write_text("not a directory")
    path = blocker / "molehill" / "profiles.toml"
    with pytest.raises(ProfilesFileUnwritable) as exc:
        save(ProfilesFile(), path)
    assert str(path) in str(exc.value)
    assert "cannot create directory" in str(exc.value)
    assert blocker.read_text() == "not a directory"


@posix_only
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores modes")
def test_unreadable_file_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text("[profiles.a]\nport = 1\n")
    path.chmod(0)
    try:
        with pytest.raises(ProfilesFileUnreadable, match="ermission"):
            load(path)
    finally:
        path.chmod(0o600)


# -- interrupted writes and concurrent edits -----------------------------------------------------


def test_interrupted_replace_leaves_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "profiles.toml"
    save(EVERY_FIELD, path)
    before = snapshot(path)
    loaded = load(path)
    real_replace = os.replace

    def failing_replace(src: str | Path, dst: str | Path) -> None:
        if Path(dst) == path:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(ProfilesFileUnwritable, match="No space left on device"):
        save(loaded.with_file(loaded.file.without("frontend")))
    assert snapshot(path) == before
    assert leftovers(tmp_path) == []
    assert load(path).file == EVERY_FIELD


def test_crash_in_the_middle_of_writing_leaves_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "profiles.toml"
    save(EVERY_FIELD, path)
    before = snapshot(path)
    loaded = load(path)

    def crash(fd: int) -> None:
        raise KeyboardInterrupt  # not an OSError: must propagate, and still clean up

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        save(loaded.with_file(loaded.file.without("backend")))
    monkeypatch.undo()
    assert snapshot(path) == before
    assert leftovers(tmp_path) == []


def test_file_changed_on_disk_after_load_is_not_clobbered(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text("[profiles.a]\nport = 1\n")
    loaded = load(path)
    path.write_text("# edited in vim meanwhile\n[profiles.a]\nport = 2\n")
    edited = path.read_bytes()
    with pytest.raises(ProfilesChangedOnDisk) as exc:
        save(loaded.with_file(loaded.file.with_added(Profile("b", 2))))
    assert "changed on disk" in str(exc.value)
    assert "Reload" in str(exc.value)
    assert str(path) in str(exc.value)
    assert path.read_bytes() == edited
    assert not backup_path(path).exists()
    assert loaded.changed_on_disk()


def test_same_size_change_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text("[profiles.a]\nport = 1\n")
    loaded = load(path)
    stat_before = path.stat()
    path.write_text("[profiles.a]\nport = 2\n")
    # Same size and, on a coarse clock, the same mtime: only the hash tells them apart.
    os.utime(path, ns=(stat_before.st_atime_ns, stat_before.st_mtime_ns))
    with pytest.raises(ProfilesChangedOnDisk):
        save(loaded)
    assert path.read_text() == "[profiles.a]\nport = 2\n"


def test_file_created_after_load_is_not_clobbered(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    loaded = load(path)
    path.write_text("[profiles.theirs]\nport = 1\n")
    with pytest.raises(ProfilesChangedOnDisk, match="created"):
        save(loaded.with_file(loaded.file.with_added(Profile("mine", 2))))
    assert path.read_text() == "[profiles.theirs]\nport = 1\n"


def test_file_removed_after_load_is_not_recreated(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text("[profiles.a]\nport = 1\n")
    loaded = load(path)
    path.unlink()
    with pytest.raises(ProfilesChangedOnDisk, match="removed"):
        save(loaded)
    assert not path.exists()


def test_bare_profiles_file_never_overwrites_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text("[profiles.a]\nport = 1\n")
    with pytest.raises(ProfilesChangedOnDisk):
        save(ProfilesFile(), path)
    assert path.read_text() == "[profiles.a]\nport = 1\n"


def test_unchanged_file_saves_and_reports_no_change(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    saved = save(EVERY_FIELD, path)
    assert isinstance(saved, LoadedProfiles)
    assert not saved.changed_on_disk()
    with pytest.raises(ValueError):
        save(saved, tmp_path / "elsewhere.toml")


@posix_only
def test_save_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "molehill.toml"
    real.write_text("[profiles.a]\nport = 1\n")
    link = tmp_path / "profiles.toml"
    link.symlink_to(real)
    loaded = load(link)
    save(loaded.with_file(loaded.file.with_added(Profile("b", 2))))
    assert link.is_symlink()
    assert load(real).file.names() == ["a", "b"]
    assert (dotfiles / "molehill.toml.bak").read_text() == "[profiles.a]\nport = 1\n"


# -- location ------------------------------------------------------------------------------------


def test_default_location_is_the_user_config_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    expected = platformdirs.user_config_path("molehill") / "profiles.toml"
    assert resolve_profiles_path() == expected.absolute()


def test_environment_variable_overrides_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env.toml"))
    assert resolve_profiles_path() == tmp_path / "env.toml"


def test_explicit_path_overrides_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env.toml"))
    assert resolve_profiles_path(tmp_path / "explicit.toml") == tmp_path / "explicit.toml"
    assert resolve_profiles_path(str(tmp_path / "explicit.toml")) == tmp_path / "explicit.toml"


def test_empty_environment_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "")
    assert resolve_profiles_path().name == "profiles.toml"
    assert resolve_profiles_path().parent.name == "molehill"


def test_relative_and_home_paths_become_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_profiles_path("p.toml") == tmp_path / "p.toml"
    assert resolve_profiles_path(environ={ENV_VAR: "~/p.toml"}) == tmp_path / "home" / "p.toml"


def test_example_file_is_exactly_what_molehill_writes() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "profiles.toml"
    loaded = load(example)
    assert loaded.file.get("frontend") == Profile("frontend", 3000, autostart=True)
    assert loaded.file.get("backend").public_name == "api"
    assert example.read_text() == render_profiles(loaded.file)
