"""Checks for single setting values: each returns why a value is invalid, or None if fine."""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import string
from datetime import date, datetime, time
from urllib.parse import urlsplit

from profiles.refs import RefError, parse_template
from relay.http.targets import TargetError, parse_target

MAX_LABEL_LENGTH = 63  # a DNS label's limit (RFC 1035): public names become NAME.relay-domain
LABEL_CHARACTERS = frozenset(string.ascii_lowercase + string.digits + "-")

_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def toml_type_name(value: object) -> str:
    """The TOML name of a value's type, for messages ("string", not "str")."""
    # bool first: it is a subclass of int.
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the float {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return "a date/time"
    return f"a {type(value).__name__}"


def label_problem(label: object) -> str | None:
    """Why `label` is not a valid DNS label (profile name or subdomain), or None if it is."""
    if not isinstance(label, str):
        return f"must be a string, got {toml_type_name(label)}"
    if not label:
        return "must not be empty; use 1 to 63 lowercase letters, digits or '-'"
    if len(label) > MAX_LABEL_LENGTH:
        return f"'{label}' is {len(label)} characters long; the limit is {MAX_LABEL_LENGTH}"
    bad = sorted({c for c in label if c not in LABEL_CHARACTERS})
    if bad:
        # Suggest the obvious fix when there is one (Frontend -> frontend, my_app -> my-app).
        suggestion = label.lower().replace("_", "-").strip("-")
        if suggestion and all(c in LABEL_CHARACTERS for c in suggestion):
            return (
                f"'{label}' contains {_quoted(bad)}; names use lowercase a-z, 0-9 and '-': "
                f"try '{suggestion}'"
            )
        return f"'{label}' contains {_quoted(bad)}; use only lowercase a-z, digits 0-9 and '-'"
    if label.startswith("-"):
        return f"'{label}' starts with '-'; a name must start with a letter or digit"
    if label.endswith("-"):
        return f"'{label}' ends with '-'; a name must end with a letter or digit"
    return None


def _quoted(characters: list[str]) -> str:
    return ", ".join(repr(c) for c in characters)


def is_valid_label(label: object) -> bool:
    """True when `label` can be a profile name or subdomain (a DNS label, lowercase)."""
    return label_problem(label) is None


def port_problem(port: object) -> str | None:
    """Why `port` is not a TCP port number, or None if it is one."""
    if port is None:
        return (
            "is required; add the local port to expose, e.g. port = 3000 "
            '(or the whole target, e.g. target = "https://localhost:8443")'
        )
    # bool is a subclass of int: `port = true` must not become port 1.
    if isinstance(port, bool) or not isinstance(port, int):
        hint = " (write it without quotes)" if isinstance(port, str) and port.isdigit() else ""
        return f"must be a whole number from 1 to 65535, got {toml_type_name(port)}{hint}"
    if not 1 <= port <= 65535:
        return f"must be from 1 to 65535, got {port}"
    return None


def host_problem(host: object) -> str | None:
    """Why `host` cannot be the local address to connect to, or None if it can."""
    if not isinstance(host, str):
        return f"must be a string, got {toml_type_name(host)}"
    if not host:
        return 'must not be empty; use e.g. "127.0.0.1" or "localhost"'
    if _CONTROL_OR_SPACE.search(host):
        return f"{host!r} contains spaces or control characters; give a host name or address"
    if "://" in host or "/" in host:
        return f'{host!r} looks like a URL; give only a host name or address, e.g. "localhost"'
    if host.startswith("["):
        return f'{host!r}: write an IPv6 address without brackets, e.g. "::1"'
    if ":" in host and not _is_ip_address(host):
        return f"{host!r} contains ':'; put the port in port = ... and only the host here"
    return None


def target_problem(target: object) -> str | None:
    """Why `target` is not a local target like "https://localhost:8443" (None: not set)."""
    if target is None:
        return None
    if not isinstance(target, str):
        hint = " (write it in quotes)" if isinstance(target, int) else ""
        return f'must be a string like "localhost:3000", got {toml_type_name(target)}{hint}'
    try:
        parse_target(target)
    except TargetError as exc:
        return str(exc)
    return None


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def network_problem(cidr: object) -> str | None:
    """Why `cidr` is not an IP address or network (CIDR), or None if it is one."""
    if not isinstance(cidr, str):
        return f"entries must be strings, got {toml_type_name(cidr)}"
    try:
        # strict=False: "10.1.2.3/8" means the network containing it, as people usually intend.
        ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return f'{cidr!r} is not an IP address or network; use e.g. "10.0.0.0/8" or "::1"'
    return None


def networks_problem(value: object) -> str | None:
    """Why `value` is not a list of IP networks, or None if it is one."""
    if isinstance(value, str):
        return f"must be a list of networks, e.g. [{json.dumps(value)}], got a single string"
    if not isinstance(value, list | tuple):
        return f'must be a list of networks, e.g. ["10.0.0.0/8"], got {toml_type_name(value)}'
    for item in value:
        problem = network_problem(item)
        if problem:
            return problem
    return None


def basic_auth_problem(value: object) -> str | None:
    """Why `value` is not "user:password" credentials, or None (None itself means "no auth")."""
    if value is None:
        return None
    if not isinstance(value, str):
        return f'must be a string "user:password", got {toml_type_name(value)}'
    user, colon, password = value.partition(":")
    if not colon:
        return "must be \"user:password\" (no ':' found)"
    if not user:
        return "the user name before ':' must not be empty"
    if not password:
        return "the password after ':' must not be empty"
    if _CONTROL.search(value):
        return "must not contain control characters or line breaks"
    return None


def host_header_problem(value: object) -> str | None:
    """Why `value` cannot replace the Host header, or None (None itself means "keep it")."""
    if value is None:
        return None
    if not isinstance(value, str):
        return f"must be a string, got {toml_type_name(value)}"
    if not value or _CONTROL_OR_SPACE.search(value):
        return 'must be a host name, optionally with :port, e.g. "myapp.test"'
    return None


def optional_label_problem(value: object) -> str | None:
    """Like `label_problem`, but None is allowed (it means "use the default")."""
    return None if value is None else label_problem(value)


def bool_problem(value: object) -> str | None:
    """Why `value` is not a boolean, or None if it is one."""
    if not isinstance(value, bool):
        return f"must be true or false, got {toml_type_name(value)}"
    return None


def relay_url_problem(url: object) -> str | None:
    """Why `url` is not a relay websocket URL, or None (None itself means "no relay set")."""
    if url is None:
        return None
    if not isinstance(url, str):
        return f"must be a string, got {toml_type_name(url)}"
    if not url.startswith(("ws://", "wss://")):
        return f'{url!r} must start with ws:// or wss://, e.g. "wss://relay.example.com"'
    try:
        host = urlsplit(url).hostname
    except ValueError as exc:
        return f"{url!r} is not a valid URL ({exc})"
    if not host or _CONTROL_OR_SPACE.search(url):
        return f'{url!r} has no host name; use e.g. "wss://relay.example.com"'
    return None


def token_problem(token: object) -> str | None:
    """Why `token` is not a usable relay token, or None (None itself means "no token")."""
    if token is None:
        return None
    if not isinstance(token, str):
        return f"must be a string, got {toml_type_name(token)}"
    if not token:
        return "must not be empty; remove the key if the relay needs no token"
    if _CONTROL_OR_SPACE.search(token):
        return "must not contain spaces, control characters or line breaks"
    return None


WEBHOOK_KINDS = ("stripe", "github", "standard")


def webhook_secrets_problem(value: object) -> str | None:
    """Why `value` is not a [webhook_secrets] table of KIND = "secret" or "env:VAR", or None."""
    if not isinstance(value, dict):
        return 'must be a table such as { stripe = "env:STRIPE_WEBHOOK_SECRET" }, got ' + (
            toml_type_name(value)
        )
    for kind, secret in value.items():
        if kind not in WEBHOOK_KINDS:
            close = difflib.get_close_matches(str(kind), WEBHOOK_KINDS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "known: " + ", ".join(WEBHOOK_KINDS)
            return f"unknown webhook kind '{kind}'; {hint}"
        if not isinstance(secret, str):
            return f'{kind} must be a string (the secret, or "env:VAR_NAME"), got ' + (
                toml_type_name(secret)
            )
        if not secret or secret == "env:":
            return f"{kind} must not be empty; remove it if there is no secret"
        if secret.startswith("env:") and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", secret[4:]):
            return f"{kind}: {secret[4:]!r} is not an environment variable name"
        if _CONTROL.search(secret):
            return f"{kind} must not contain control characters or line breaks"
    return None


PROTOCOLS = ("http", "tcp")


def protocol_problem(value: object) -> str | None:
    """Why `value` is not a tunnel protocol ("http" or "tcp"), or None if it is one."""
    if value not in PROTOCOLS or not isinstance(value, str):
        shown = toml_type_name(value)
        return f'must be "http" or "tcp", got {shown}'
    return None


def remote_port_problem(value: object) -> str | None:
    """Why `value` cannot be a TCP tunnel's public port, or None (None means "any free one")."""
    if value is None:
        return None
    return port_problem(value)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_STOP_GRACE = 300.0


def command_problem(value: object) -> str | None:
    """Why `value` cannot be a shell command to run, or None (None itself means "no command")."""
    if value is None:
        return None
    if not isinstance(value, str):
        return (
            f'must be a string, the shell command, e.g. "npm run dev"; got {toml_type_name(value)}'
        )
    if not value.strip():
        return "must not be empty; remove the key if the profile runs no command"
    if "\x00" in value:
        return "must not contain a NUL character"
    return None


def cwd_problem(value: object) -> str | None:
    """Why `value` cannot be the command's working directory, or None (None: the profiles
    file's directory)."""
    if value is None:
        return None
    if not isinstance(value, str):
        return f'must be a string, a directory such as "./web"; got {toml_type_name(value)}'
    if not value or _CONTROL.search(value):
        return "must be a directory path, with no control characters"
    return None


def env_problem(value: object) -> str | None:
    """Why `value` is not an [env] table of NAME = "value" strings, or None if it is one."""
    if not isinstance(value, dict):
        example = '{ API_URL = "{backend.url}" }'
        return f"must be a table such as {example}, got {toml_type_name(value)}"
    for name, text in value.items():
        if not _ENV_NAME.fullmatch(str(name)):
            return f"{name!r} is not an environment variable name (letters, digits, '_')"
        if not isinstance(text, str):
            hint = (
                f' (write it in quotes: {name} = "{text}")' if isinstance(text, int | float) else ""
            )
            return f"{name} must be a string, got {toml_type_name(text)}{hint}"
        if "\x00" in text:
            return f"{name} must not contain a NUL character"
        try:
            parse_template(text)
        except RefError as exc:
            return f"{name}: {exc}"
    return None


def health_problem(value: object) -> str | None:
    """Why `value` is not a health-check path such as "/healthz", or None (None: port only)."""
    if value is None:
        return None
    if not isinstance(value, str):
        return f'must be a path string such as "/healthz", got {toml_type_name(value)}'
    if not value.startswith("/") or _CONTROL_OR_SPACE.search(value):
        return f'{value!r} must be a path starting with "/" with no spaces, e.g. "/healthz"'
    return None


def stop_grace_problem(value: object) -> str | None:
    """Why `value` is not a grace period in seconds between SIGTERM and SIGKILL, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number of seconds, e.g. 5, got {toml_type_name(value)}"
    if not 0 <= value <= MAX_STOP_GRACE:
        return f"must be from 0 to {MAX_STOP_GRACE:g} seconds, got {value}"
    return None
