"""Named tunnel profiles: model, validation and the TOML file they live in."""

from profiles.errors import (
    InvalidProfiles,
    Problem,
    ProfileAlreadyExists,
    ProfileNotFound,
    ProfilesChangedOnDisk,
    ProfilesError,
    ProfilesFileUnreadable,
    ProfilesFileUnwritable,
    ProfilesSyntaxError,
)
from profiles.model import DEFAULT_HOST, Profile, ProfilesFile, RelaySettings
from profiles.paths import ENV_VAR, default_profiles_path, resolve_profiles_path
from profiles.store import Fingerprint, LoadedProfiles, load, save
from profiles.validate import is_valid_label, label_problem

__all__ = [
    "DEFAULT_HOST",
    "ENV_VAR",
    "Fingerprint",
    "InvalidProfiles",
    "LoadedProfiles",
    "Problem",
    "Profile",
    "ProfileAlreadyExists",
    "ProfileNotFound",
    "ProfilesChangedOnDisk",
    "ProfilesError",
    "ProfilesFile",
    "ProfilesFileUnreadable",
    "ProfilesFileUnwritable",
    "ProfilesSyntaxError",
    "RelaySettings",
    "default_profiles_path",
    "is_valid_label",
    "label_problem",
    "load",
    "resolve_profiles_path",
    "save",
]
