"""`molehill service install`: a systemd user unit that systemd-analyze accepts."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.service.support import ROOT, service_env

ANALYZE = shutil.which("systemd-analyze")


def _install(tmp_path, profiles, *extra):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tui.cli",
            "--profiles",
            str(profiles),
            "service",
            "install",
            *extra,
        ],
        cwd=ROOT,
        env=service_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("folder", ["plain", "with space and 100%"])
def test_unit_passes_systemd_analyze_verify(tmp_path, folder):
    profiles = tmp_path / folder / "profiles.toml"
    profiles.parent.mkdir()
    profiles.write_text("[profiles.web]\nport = 3000\nautostart = true\n")
    done = _install(tmp_path, profiles)
    assert done.returncode == 0, done.stderr
    unit = tmp_path / "config" / "systemd" / "user" / "molehill.service"
    assert f"wrote {unit}" in done.stdout
    assert "systemctl --user enable --now molehill.service" in done.stdout
    assert "loginctl enable-linger" in done.stdout
    text = unit.read_text()
    assert "service run" in text and "ExecReload=/bin/kill -HUP $MAINPID" in text
    verify = subprocess.run(
        [str(ANALYZE), "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0, verify.stderr
    assert "molehill.service" not in verify.stderr, verify.stderr  # no warning about it


def test_an_existing_unit_is_kept_unless_forced(tmp_path):
    profiles = tmp_path / "profiles.toml"
    unit = tmp_path / "config" / "systemd" / "user" / "tunnels.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("# mine\n")
    done = _install(tmp_path, profiles, "--name", "tunnels")
    assert done.returncode == 1 and "--force replaces it" in done.stderr
    assert unit.read_text() == "# mine\n"
    done = _install(tmp_path, profiles, "--name", "tunnels", "--force")
    assert done.returncode == 0 and "[Service]" in unit.read_text()


def test_the_units_command_never_imports_from_the_working_directory(tmp_path):
    """`-m` would put the working directory first on the module path (a user's tui.py there
    would run instead of molehill); the unit, `service start`'s child and the dashboard's
    restart all start molehill with -P."""
    from tui.service.unit import cli_command, unit_text

    profiles = tmp_path / "p.toml"
    assert cli_command(profiles, "/usr/bin/python3")[:4] == [
        "/usr/bin/python3",
        "-P",
        "-m",
        "tui.cli",
    ]
    exec_start = next(
        line for line in unit_text(profiles).splitlines() if line.startswith("ExecStart=")
    )
    assert " -P -m tui.cli --profiles " in exec_start
    assert exec_start.endswith(" service run")
    project = tmp_path / "project"
    project.mkdir()
    (project / "tui.py").write_text("raise SystemExit('the project tui.py ran')\n")
    done = subprocess.run(
        [*cli_command(profiles), "--version"], cwd=project, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("molehill ")
