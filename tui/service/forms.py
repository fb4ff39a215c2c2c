"""What crosses the control channel, as plain data: the host's statuses, events and records,
and the settings a dashboard starts a tunnel with.

A dataclass of a known type becomes a map with its type's name under ``"~"``; anything else
must already be plain (str, bytes, numbers, bool, None, lists, string-keyed maps). Decoding
accepts only the known types and only their own fields: a ``FormError`` otherwise.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from relay.agent import AgentSettings
from relay.events import (
    Capture,
    Reconnected,
    Reconnecting,
    RequestRecord,
    TunnelClosed,
    TunnelOpen,
    TunnelRefused,
)
from relay.host import HostUpdate, TcpFigures, TunnelStatus
from relay.stats import AppDown, StatsSnapshot

TAG = "~"
_KNOWN: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        AgentSettings,
        AppDown,
        Capture,
        Reconnected,
        Reconnecting,
        RequestRecord,
        StatsSnapshot,
        TcpFigures,
        TunnelClosed,
        TunnelOpen,
        TunnelRefused,
        TunnelStatus,
    )
}
# Fields that stay in their process: a function (the agent's resolver) cannot travel.
_LOCAL_ONLY = {"resolver"}
_FIELDS = {
    name: {f.name for f in dataclasses.fields(cls)} - _LOCAL_ONLY for name, cls in _KNOWN.items()
}
MAX_DEPTH = 16  # the deepest real form is 5 levels; deeper is hostile


class FormError(ValueError):
    """A decoded value is not one of the forms this channel carries."""


def pack(value: Any) -> Any:
    """``value`` as plain data msgpack can carry."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if _KNOWN.get(name) is not type(value):
            # A subclass (a history row) travels as its base: the channel knows only these.
            base = next((c for c in type(value).__mro__ if _KNOWN.get(c.__name__) is c), None)
            if base is None:
                raise TypeError(f"{name} does not travel on the control channel")
            name = base.__name__
        out: dict[str, Any] = {TAG: name}
        for field in _FIELDS[name]:
            out[field] = pack(getattr(value, field))
        return out
    if isinstance(value, dict):
        return {key: pack(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [pack(item) for item in value]
    return value


def unpack(value: Any, depth: int = 0) -> Any:
    """The objects ``pack`` made (sequences come back as tuples); raises FormError."""
    if depth > MAX_DEPTH:
        raise FormError("nested too deeply")
    if isinstance(value, dict):
        if TAG not in value:
            return {key: unpack(item, depth + 1) for key, item in value.items()}
        name = value[TAG]
        cls = _KNOWN.get(name) if isinstance(name, str) else None
        if cls is None:
            raise FormError(f"unknown form {name!r}")
        fields = {key: unpack(item, depth + 1) for key, item in value.items() if key != TAG}
        unknown = set(fields) - _FIELDS[name]
        if unknown:
            raise FormError(f"{name} has no field(s) {sorted(unknown)}")
        try:
            return cls(**fields)
        except TypeError as exc:
            raise FormError(f"{name}: {exc}") from None
    if isinstance(value, tuple):
        return tuple(unpack(item, depth + 1) for item in value)
    return value


def pack_update(update: HostUpdate) -> dict[str, Any]:
    """A drained batch as a feed message's body."""
    return {
        "records": pack(update.records),
        "events": [[key, pack(event)] for key, event in update.events],
        "statuses": pack(update.statuses),
    }


def unpack_update(body: Any) -> HostUpdate:
    """The batch ``pack_update`` made; raises FormError if it is not one."""
    if not isinstance(body, dict):
        raise FormError("a feed batch must be a map")
    records = unpack(body.get("records", {}))
    events = unpack(body.get("events", ()))
    statuses = unpack(body.get("statuses", {}))
    if not isinstance(records, dict) or not all(
        isinstance(k, str) and isinstance(v, tuple) and all(type(r) is RequestRecord for r in v)
        for k, v in records.items()
    ):
        raise FormError("records must map tunnel names to lists of requests")
    if not isinstance(statuses, dict) or not all(
        isinstance(v, TunnelStatus) for v in statuses.values()
    ):
        raise FormError("statuses must map tunnel names to statuses")
    if not isinstance(events, tuple) or not all(
        isinstance(e, tuple) and len(e) == 2 and isinstance(e[0], str) for e in events
    ):
        raise FormError("events must be [tunnel, event] pairs")
    return HostUpdate(
        {k: list(v) for k, v in records.items()}, [(k, e) for k, e in events], statuses
    )
