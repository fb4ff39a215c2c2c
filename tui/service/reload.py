"""What re-reading the profiles file changes, decided without touching a tunnel (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from profiles.model import ProfilesFile


@dataclass(slots=True)
class Plan:
    stopped: list[str] = field(default_factory=list)  # running, and gone from the file
    restarted: list[str] = field(default_factory=list)  # running, and its profile changed
    started: list[str] = field(default_factory=list)  # new in the file, with autostart
    unchanged: list[str] = field(default_factory=list)  # running as the file says
    relay_changed: bool = False  # [relay] differs: only a service restart applies it

    def as_dict(self) -> dict[str, object]:
        return {
            "stopped": self.stopped,
            "restarted": self.restarted,
            "started": self.started,
            "unchanged": self.unchanged,
            "relay_changed": self.relay_changed,
        }

    def describe(self) -> str:
        parts = [
            f"{what} {', '.join(names)}"
            for what, names in (
                ("started", self.started),
                ("restarted", self.restarted),
                ("stopped", self.stopped),
                ("unchanged", self.unchanged),
            )
            if names
        ]
        if self.relay_changed:
            parts.append("[relay] changed: `molehill service restart` applies it")
        return "; ".join(parts) or "nothing to do"


def plan_reload(old: ProfilesFile, new: ProfilesFile, running: set[str]) -> Plan:
    """Running tunnels whose profile is unchanged are left alone (no reconnect, no lost
    request); a changed one restarts; a removed one stops; a new autostart one starts."""
    plan = Plan(relay_changed=old.relay != new.relay)
    for name in sorted(running):
        if name not in new.profiles:
            if name in old.profiles:  # a tunnel a dashboard started by hand stays
                plan.stopped.append(name)
        elif new.profiles[name] != old.profiles.get(name):
            plan.restarted.append(name)
        else:
            plan.unchanged.append(name)
    for name, profile in new.profiles.items():
        if name not in old.profiles and name not in running and profile.autostart:
            plan.started.append(name)
    return plan
