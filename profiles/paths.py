"""Where the profiles file lives: --profiles PATH, then MOLEHILL_PROFILES, then the config dir."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import platformdirs

APP_NAME = "molehill"
FILE_NAME = "profiles.toml"
ENV_VAR = "MOLEHILL_PROFILES"


def default_profiles_path() -> Path:
    """The per-user default, e.g. ~/.config/molehill/profiles.toml on Linux."""
    return platformdirs.user_config_path(APP_NAME) / FILE_NAME


def resolve_profiles_path(
    explicit: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """The profiles file to use, as an absolute path.

    An explicit path (from --profiles PATH) wins, then the MOLEHILL_PROFILES environment
    variable, then the per-user config directory. Empty values count as unset, so
    `MOLEHILL_PROFILES= molehill ...` falls back to the default instead of using the cwd.
    """
    env = os.environ if environ is None else environ
    chosen: str | Path
    if explicit is not None and str(explicit) != "":
        chosen = explicit
    elif env.get(ENV_VAR):
        chosen = env[ENV_VAR]
    else:
        chosen = default_profiles_path()
    # absolute() and not resolve(): keep a symlinked path as the user wrote it in messages;
    # the store follows the link itself when it writes.
    return Path(chosen).expanduser().absolute()
