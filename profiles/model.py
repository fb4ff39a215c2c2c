"""The profile model (Profile, ProfilesFile; [relay] in relay.py), validated whenever built."""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from profiles.errors import InvalidProfiles, Problem, ProfileAlreadyExists, ProfileNotFound
from profiles.refs import reference_problems
from profiles.relay import RELAY_CHECKS, RelaySettings
from profiles.validate import (
    basic_auth_problem,
    bool_problem,
    command_problem,
    cwd_problem,
    env_problem,
    health_problem,
    host_header_problem,
    host_problem,
    label_problem,
    networks_problem,
    optional_label_problem,
    port_problem,
    protocol_problem,
    remote_port_problem,
    stop_grace_problem,
    target_problem,
    toml_type_name,
    webhook_secrets_problem,
)
from relay.http.targets import parse_target

DEFAULT_HOST = "127.0.0.1"

Check = Callable[[object], str | None]

# Keys of a [profiles.NAME] table, in the order molehill writes them, with their checks.
PROFILE_CHECKS: dict[str, Check] = {
    "target": target_problem,
    "port": port_problem,
    "host": host_problem,
    "local_insecure": bool_problem,
    "subdomain": optional_label_problem,
    "basic_auth": basic_auth_problem,
    "allow": networks_problem,
    "deny": networks_problem,
    "host_header": host_header_problem,
    "autostart": bool_problem,
    "webhook_secrets": webhook_secrets_problem,
    "capture": bool_problem,
    "protocol": protocol_problem,
    "remote_port": remote_port_problem,
    "command": command_problem,
    "cwd": cwd_problem,
    "env": env_problem,
    "health": health_problem,
    "stop_grace": stop_grace_problem,
}
TOP_LEVEL_KEYS = ("relay", "profiles")

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_key(key: str) -> str:
    """`key` as TOML writes it in a table header: bare when it can be, quoted otherwise."""
    if _BARE_KEY.fullmatch(key):
        return key
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def profile_table(name: str) -> str:
    """The TOML table that holds profile `name`, e.g. "profiles.frontend"."""
    return f"profiles.{toml_key(name)}"


def _check_fields(table: str, obj: object, checks: Mapping[str, Check]) -> list[Problem]:
    problems = []
    for key, check in checks.items():
        problem = check(getattr(obj, key))
        if problem:
            problems.append(Problem(table, key, problem))
    return problems


@dataclass(frozen=True)
class Profile:
    """One local service to expose: where it listens and the public name it asks for."""

    name: str
    port: int = None  # type: ignore[assignment]  # None only when target gives it
    host: str = DEFAULT_HOST
    subdomain: str | None = None  # None: the public name is the profile name
    basic_auth: str | None = None  # "user:password" the relay will demand, or None for no auth
    allow: tuple[str, ...] = ()  # client networks (CIDR) let in; empty lets everyone in
    deny: tuple[str, ...] = ()  # client networks (CIDR) turned away
    host_header: str | None = None  # rewrite the Host header to this before it reaches the app
    autostart: bool = False  # start this tunnel when the dashboard opens
    target: str | None = None  # "https://localhost:8443" etc.: sets host, port and TLS at once
    local_insecure: bool = False  # https target: accept any certificate (self-signed)
    # Replays re-sign webhooks with these: {"stripe": "whsec_..." or "env:VAR", ...}.
    webhook_secrets: dict[str, str] = field(default_factory=dict, hash=False)
    capture: bool = True  # false: the dashboard keeps none of its exchanges in the capture store
    protocol: str = "http"  # "tcp": raw TCP at tcp://RELAY:PORT, no HTTP layer
    remote_port: int | None = None  # the public port a tcp profile asks for; None: any free one
    command: str | None = None  # shell command that runs the app, started with the tunnel
    cwd: str | None = None  # its working directory; relative: to the profiles file's directory
    # Its extra environment; values may say "{backend.url}", "{backend.host}", "{backend.port}".
    env: dict[str, str] = field(default_factory=dict, hash=False)
    health: str | None = None  # a path that must answer 2xx/3xx before the app counts as ready
    stop_grace: float = 5.0  # seconds between SIGTERM and SIGKILL when the command stops

    def __post_init__(self) -> None:
        # TOML arrays arrive as lists; store tuples so a Profile really is immutable.
        for key in ("allow", "deny"):
            value = getattr(self, key)
            if isinstance(value, list):
                object.__setattr__(self, key, tuple(value))
        table = profile_table(self.name) if isinstance(self.name, str) else "profiles"
        problems = []
        name_problem = label_problem(self.name)
        if name_problem:
            problems.append(Problem(table, None, f"the profile name {name_problem}"))
        problems += self._target_problems(table)
        problems += _check_fields(table, self, PROFILE_CHECKS)
        problems += _protocol_problems(table, self)
        if self.cwd is not None and self.command is None and not problems:
            problems.append(Problem(table, "cwd", "is the command's directory; set command too"))
        if problems:
            raise InvalidProfiles(problems)

    def _target_problems(self, table: str) -> list[Problem]:
        """Take host and port from ``target``; it and port/host are two ways to say one thing."""
        if self.target is None:
            if self.local_insecure is True:
                why = 'is for an https target; set target = "https://HOST:PORT"'
                return [Problem(table, "local_insecure", why)]
            return []
        if target_problem(self.target):
            object.__setattr__(self, "port", 1)  # only the target's problem is reported
            return []
        if self.port is not None or self.host != DEFAULT_HOST:
            if self.port is None:
                object.__setattr__(self, "port", 1)  # the conflict is the one problem
            why = "gives host and port already; remove port and host, or target"
            return [Problem(table, "target", why)]
        parsed = parse_target(self.target)
        object.__setattr__(self, "port", parsed.port)
        object.__setattr__(self, "host", parsed.host)
        if self.local_insecure is True and not parsed.tls:
            why = f'is for an https target; the target is "{self.target}"'
            return [Problem(table, "local_insecure", why)]
        return []

    @property
    def tls(self) -> bool:
        """Whether the agent speaks TLS to the local app (an https:// target)."""
        return self.target is not None and parse_target(self.target).tls

    @property
    def public_name(self) -> str:
        """The name the relay is asked for: the subdomain if set, else the profile name."""
        return self.subdomain or self.name

    @property
    def local_address(self) -> str:
        """host:port of the local service, with brackets around an IPv6 address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def local_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.local_address}"


def _protocol_problems(table: str, profile: Profile) -> list[Problem]:
    """Settings that make no sense for the profile's protocol (checked once each is valid)."""
    if profile.protocol == "tcp":
        why = "the relay sees no HTTP in a TCP tunnel"
        problems = [
            Problem(table, key, f'does not apply to protocol = "tcp" ({why}); remove it')
            for key in ("basic_auth", "host_header")
            if getattr(profile, key) is not None
        ]
        if profile.health is not None:
            problems.append(
                Problem(
                    table,
                    "health",
                    'is an HTTP path; it does not apply to protocol = "tcp" '
                    "(the port answering is what counts there); remove it",
                )
            )
        if profile.target is not None and "://" in profile.target:
            problems.append(
                Problem(table, "target", "a tcp profile's target is PORT or HOST:PORT, no scheme")
            )
        return problems
    if profile.protocol == "http" and profile.remote_port is not None:
        return [
            Problem(
                table,
                "remote_port",
                'applies only to protocol = "tcp"; remove it, or set protocol = "tcp"',
            )
        ]
    return []


def public_name_problems(profiles: Iterable[Profile]) -> list[Problem]:
    """One problem per profile that asks for a public name an earlier profile already asks for."""
    owners: dict[str, Profile] = {}
    problems = []
    for profile in profiles:
        owner = owners.setdefault(profile.public_name, profile)
        if owner is profile:
            continue
        how = "" if profile.subdomain else " (its name: it sets no subdomain)"
        problems.append(
            Problem(
                profile_table(profile.name),
                "subdomain",
                f"public name '{profile.public_name}'{how} is already asked for by profile "
                f"'{owner.name}'; two profiles cannot share a public name: set a different "
                "subdomain on one of them",
            )
        )
    return problems


def env_reference_problems(profiles: Iterable[Profile]) -> list[Problem]:
    """A problem per [env] reference to an unknown profile, and per cycle of references."""
    envs = {profile.name: profile.env for profile in profiles}
    return [Problem(profile_table(name), "env", why) for name, why in reference_problems(envs)]


def _unknown_key_problems(
    table: str, data: Mapping[str, Any], known: Iterable[str]
) -> list[Problem]:
    known = list(known)
    problems = []
    for key in data:
        if key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "known keys: " + ", ".join(known)
        problems.append(Problem(table, key, f"unknown key; {hint}"))
    return problems


@dataclass(frozen=True)
class ProfilesFile:
    """Everything in a profiles file: the relay settings and the profiles, in file order."""

    relay: RelaySettings = field(default_factory=RelaySettings)
    profiles: dict[str, Profile] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Keep a private copy, so the caller's dict cannot change a "frozen" ProfilesFile.
        object.__setattr__(self, "profiles", dict(self.profiles))
        problems = []
        for key, profile in self.profiles.items():
            if not isinstance(profile, Profile):
                raise TypeError(f"profiles[{key!r}] is a {type(profile).__name__}, not a Profile")
            if key != profile.name:
                problems.append(
                    Problem(profile_table(key), None, f"holds a profile named '{profile.name}'")
                )
        problems += public_name_problems(self.profiles.values())
        problems += env_reference_problems(self.profiles.values())
        if problems:
            raise InvalidProfiles(problems)

    # -- reading ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Profile names in file order."""
        return list(self.profiles)

    def get(self, name: str) -> Profile:
        """The profile called `name`; ProfileNotFound (listing the known names) if none is."""
        try:
            return self.profiles[name]
        except KeyError:
            raise ProfileNotFound(name, self.names()) from None

    def autostart_profiles(self) -> list[Profile]:
        """Profiles to start when the dashboard opens, in file order."""
        return [profile for profile in self.profiles.values() if profile.autostart]

    # -- changing (each returns a new, validated ProfilesFile) -----------------------------

    def with_added(self, profile: Profile) -> ProfilesFile:
        """A copy with `profile` appended; ProfileAlreadyExists if the name is taken."""
        if profile.name in self.profiles:
            raise ProfileAlreadyExists(profile.name)
        return ProfilesFile(self.relay, {**self.profiles, profile.name: profile})

    def with_replaced(self, profile: Profile) -> ProfilesFile:
        """A copy with the profile of the same name replaced, keeping its place in the file."""
        self.get(profile.name)
        return ProfilesFile(self.relay, {**self.profiles, profile.name: profile})

    def without(self, name: str) -> ProfilesFile:
        """A copy without profile `name`; ProfileNotFound if there is none."""
        self.get(name)
        return ProfilesFile(self.relay, {k: v for k, v in self.profiles.items() if k != name})

    def with_relay(self, relay: RelaySettings) -> ProfilesFile:
        """A copy with other relay settings."""
        return ProfilesFile(relay, self.profiles)

    # -- TOML documents --------------------------------------------------------------------

    @classmethod
    def from_toml(cls, document: Mapping[str, Any]) -> ProfilesFile:
        """Build from a parsed TOML document, reporting every problem at once (InvalidProfiles).

        Nothing is dropped or fixed up: an unknown key is an error, not something to ignore.
        """
        problems = _unknown_key_problems("", document, TOP_LEVEL_KEYS)

        relay = RelaySettings()
        raw_relay = document.get("relay", {})
        if not isinstance(raw_relay, dict):
            message = f"must be a table ([relay]), got {toml_type_name(raw_relay)}"
            problems.append(Problem("", "relay", message))
        else:
            problems += _unknown_key_problems("relay", raw_relay, RELAY_CHECKS)
            try:
                relay = RelaySettings(**{k: raw_relay[k] for k in RELAY_CHECKS if k in raw_relay})
            except InvalidProfiles as exc:
                problems += exc.problems

        profiles: dict[str, Profile] = {}
        raw_profiles = document.get("profiles", {})
        if not isinstance(raw_profiles, dict):
            message = f"must hold [profiles.NAME] tables, got {toml_type_name(raw_profiles)}"
            problems.append(Problem("", "profiles", message))
            raw_profiles = {}
        for name, raw in raw_profiles.items():
            table = profile_table(name)
            if not isinstance(raw, dict):
                message = f"must be a table with at least port = ..., got {toml_type_name(raw)}"
                problems.append(Problem(table, None, message))
                continue
            problems += _unknown_key_problems(table, raw, PROFILE_CHECKS)
            values = {k: raw[k] for k in PROFILE_CHECKS if k in raw}
            try:
                profiles[name] = Profile(name=name, **values)
            except InvalidProfiles as exc:
                problems += exc.problems
        problems += public_name_problems(profiles.values())
        problems += env_reference_problems(profiles.values())

        if problems:
            raise InvalidProfiles(problems)
        return cls(relay, profiles)

    def to_toml(self) -> dict[str, Any]:
        """A TOML document for this file, leaving out every key that holds its default."""
        document: dict[str, Any] = {}
        relay = _non_default_fields(self.relay, RELAY_CHECKS)
        if relay:
            document["relay"] = relay
        if self.profiles:
            document["profiles"] = {
                name: _non_default_fields(profile, PROFILE_CHECKS)
                for name, profile in self.profiles.items()
            }
        return document


def _non_default_fields(obj: Profile | RelaySettings, keys: Iterable[str]) -> dict[str, Any]:
    defaults = {f.name: f.default for f in dataclasses.fields(obj)}
    values: dict[str, Any] = {}
    for key in keys:
        if key in ("port", "host") and getattr(obj, "target", None) is not None:
            continue  # the target says them
        value = getattr(obj, key)
        if key in defaults and value == defaults[key]:
            continue
        if key in ("webhook_secrets", "env") and not value:
            continue
        values[key] = list(value) if isinstance(value, tuple) else value
    return values
