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
