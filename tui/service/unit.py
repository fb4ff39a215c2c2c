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


def unit_text(profiles: Path, python: str | None = None) -> str:
    command = [python or sys.executable, "-m", "tui.cli", "--profiles", str(profiles)]
    command += ["service", "run"]
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
