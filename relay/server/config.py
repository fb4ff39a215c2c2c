"""The relay's TOML config file: read strictly into RelaySettings (command-line flags override).

Every key is documented in docs/self-hosting.md. A wrong key or value is a ConfigError that names
the key and says what is expected; nothing is guessed.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from relay.cluster.settings import parse_cluster
from relay.server.access import TokenEntry, parse_networks
from relay.server.settings import RelaySettings
from relay.server.tcp_ports import parse_port_range


class ConfigError(Exception):
    """The config file cannot be used; the message says where and why."""


_TOP = {
    "domain": str,
    "http": str,
    "agents": str,
    "public_port": int,
    "public_scheme": str,
    "open": bool,
    "trusted_proxies": list,
    "lease": float,
    "log_format": str,
    "tls": dict,
    "limits": dict,
    "tokens": list,
    "tcp_ports": str,
    "cluster": dict,
}
_CLUSTER = {"redis": str, "node_id": str, "node_url": str, "secret": str}
_TLS = {"cert": str, "key": str}
_LIMITS = {
    "max_head": int,
    "max_headers": int,
    "head_timeout": float,
    "keepalive_timeout": float,
    "idle_timeout": float,
    "connections_per_ip": int,
    "ipv6_prefix": int,
    "rate": float,
    "burst": float,
    "max_message": int,
    "streams_per_agent": int,
    "max_client_share": float,
    "ping_interval": float,
    "ping_timeout": float,
    "window": int,
    "tcp_idle_timeout": float,
    "refusal_log_rate": float,
}
# Values below these make a relay no agent can work with (or that closes everything at once).
_RANGES: dict[str, tuple[float, float | None]] = {
    "window": (1024, 2**31 - 1),
    "ping_interval": (0.05, None),
    "ping_timeout": (0.1, None),
    "max_head": (1024, None),
    "max_headers": (8, None),
    "max_message": (2 * 1024 * 1024, None),
    "streams_per_agent": (1, None),
    "max_client_share": (0, 1),
    "ipv6_prefix": (32, 128),
}
_TOKEN = {
    "label": str,
    "hash": str,
    "names": list,
    "max_tunnels": int,
    "revoked": bool,
    "ports": list,
    "max_tcp_ports": int,
}


def _check(table: dict[str, Any], schema: Mapping[str, type], where: str) -> None:
    for key, value in table.items():
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise ConfigError(f"{where}: unknown key '{key}' (known keys: {known})")
        kind = schema[key]
        ok = (
            isinstance(value, int | float) and not isinstance(value, bool)
            if kind is float
            else isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        )
        if not ok:
            raise ConfigError(
                f"{where}: '{key}' must be {kind.__name__}, not {type(value).__name__}"
            )


def _host_port(text: str, where: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{where}: expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def load_config(path: str | Path, base: RelaySettings | None = None) -> RelaySettings:
    """Read ``path`` over ``base`` (defaults); raise ConfigError on any problem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (create it, or drop --config)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    settings = dataclasses.replace(base or RelaySettings())
    settings.config_path = str(path)
    _check(data, _TOP, str(path))
    for key in ("domain", "public_port", "public_scheme", "open", "lease", "log_format"):
        if key in data:
            setattr(settings, key, data[key])
    if settings.public_scheme not in ("http", "https"):
        raise ConfigError(f"{path}: public_scheme must be 'http' or 'https'")
    if settings.log_format not in ("text", "json"):
        raise ConfigError(f"{path}: log_format must be 'text' or 'json'")
    if "http" in data:
        settings.http_host, settings.http_port = _host_port(data["http"], f"{path}: http")
    if "agents" in data:
        settings.agents_host, settings.agents_port = _host_port(data["agents"], f"{path}: agents")
    try:
        settings.trusted_proxies = parse_networks(
            str(item) for item in data.get("trusted_proxies", [])
        )
    except ValueError as exc:
        raise ConfigError(f"{path}: trusted_proxies: {exc}") from None
    if "tcp_ports" in data:
        try:
            settings.tcp_ports = parse_port_range(data["tcp_ports"])
        except ValueError as exc:
            raise ConfigError(f"{path}: tcp_ports: {exc}") from None
    tls = data.get("tls", {})
    _check(tls, _TLS, f"{path} [tls]")
    if bool(tls.get("cert")) != bool(tls.get("key")):
        raise ConfigError(f"{path} [tls]: set both cert and key, or neither")
    settings.tls_cert = tls.get("cert", settings.tls_cert)
    settings.tls_key = tls.get("key", settings.tls_key)
    limits = data.get("limits", {})
    _check(limits, _LIMITS, f"{path} [limits]")
    for key, value in limits.items():
        if value < 0:
            raise ConfigError(f"{path} [limits]: '{key}' cannot be negative")
        low, high = _RANGES.get(key, (0, None))
        if value < low or (high is not None and value > high):
            span = f"at least {low}" if high is None else f"from {low} to {high}"
            raise ConfigError(f"{path} [limits]: '{key}' must be {span}, not {value}")
        setattr(settings, key, value)
    if settings.ping_timeout <= settings.ping_interval:
        raise ConfigError(f"{path} [limits]: ping_timeout must be longer than ping_interval")
    if settings.max_message < 2 * 1024 * 1024:
        raise ConfigError(f"{path} [limits]: max_message must be at least 2 MiB (agents batch)")
    settings.tokens = tuple(_tokens(data.get("tokens", []), path))
    if "cluster" in data:
        cluster = data["cluster"]
        _check(cluster, _CLUSTER, f"{path} [cluster]")
        try:
            settings.cluster = parse_cluster(
                cluster.get("redis", ""),
                cluster.get("node_id", ""),
                cluster.get("node_url", ""),
                cluster.get("secret", ""),
            )
        except ValueError as exc:
            raise ConfigError(f"{path} [cluster]: {exc}") from None
    return settings


def token_entries(items: list[Any], source: str) -> list[TokenEntry]:
    """``[[tokens]]`` tables (from a file, or shared in Redis) checked as entries; ConfigError
    naming ``source`` for a bad one."""
    return _tokens(items, Path(source))


def _tokens(items: list[Any], path: Path) -> list[TokenEntry]:
    entries = []
    labels: set[str] = set()
    for index, item in enumerate(items):
        where = f"{path} [[tokens]] #{index + 1}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: must be a table")
        _check(item, _TOKEN, where)
        if "label" not in item or "hash" not in item:
            raise ConfigError(f"{where}: needs 'label' and 'hash'")
        if item["label"] in labels:
            raise ConfigError(f"{where}: the label '{item['label']}' is used twice")
        labels.add(item["label"])
        if not str(item["hash"]).startswith("sha256:"):
            raise ConfigError(f"{where}: 'hash' must look like 'sha256:...' (use token add)")
        ports = item.get("ports", [])
        if not all(
            isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 65535 for n in ports
        ):
            raise ConfigError(f"{where}: 'ports' must be a list of port numbers (1-65535)")
        if item.get("max_tcp_ports", 0) < 0 or item.get("max_tunnels", 0) < 0:
            raise ConfigError(f"{where}: limits cannot be negative")
        entries.append(
            TokenEntry(
                label=item["label"],
                hash=item["hash"],
                names=tuple(str(n) for n in item.get("names", [])),
                max_tunnels=item.get("max_tunnels", 0),
                revoked=item.get("revoked", False),
                ports=tuple(ports),
                max_tcp_ports=item.get("max_tcp_ports", 0),
            )
        )
    return entries
