"""The systemd user unit that runs a profiles file's service (`molehill service install`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _quoted(arg: str) -> str:
    """One ExecStart argument as systemd reads it (quotes and backslashes escaped; % doubled)."""
    arg = arg.replace("%", "%%")
    if arg and not any(c in arg for c in " \t\"\\'"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cli_command(profiles: Path, python: str | None = None) -> list[str]:
    """``python -P -m tui.cli --profiles PROFILES``: molehill's CLI in a new process.

    ``-P``: ``-m`` would put the working directory first on the module path, so a ``tui.py``
    (or ``inspector/``, ``relay/`` ...) in the user's project would run instead of molehill."""
    return [python or sys.executable, "-P", "-m", "tui.cli", "--profiles", str(profiles)]


def unit_text(profiles: Path, python: str | None = None) -> str:
    command = [*cli_command(profiles, python), "service", "run"]
    return f"""[Unit]
Description=molehill tunnels ({profiles})

[Service]
Type=simple
ExecStart={" ".join(_quoted(a) for a in command)}
ExecReload=/bin/kill -HUP $MAINPID
# SIGTERM: tunnels say GOAWAY (their names are free at once), the capture store is flushed.
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=on-failure
RestartSec=2

[Install]
WantedBy=default.target
"""


def unit_dir() -> Path:
    """Where systemd looks for the user's own units."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user"
