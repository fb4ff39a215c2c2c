"""The dashboard's answer to a refused name: its own words, "take it over?", and a countdown
in the sidebar to the moment a held name is free, when the tunnel is started again."""

from __future__ import annotations

import dataclasses
import math
import time

from profiles.model import Profile
from relay.events import TunnelRefused
from relay.host import TunnelStatus
from tui.profile_actions import ProfileActions
from tui.refusals import name_refusal
from tui.screens.takeover import TakeoverScreen


class NameHolds(ProfileActions):
    """Mixed into MolehillApp, above ProfileActions."""

    def __init__(self) -> None:
        super().__init__()
        self.holds: dict[str, float] = {}  # profile -> when (monotonic) its held name is free
        self.refusal_words: dict[str, str] = {}  # profile -> the dashboard's words for it
        self._took_over: set[str] = set()  # profiles started with takeover since their refusal

    def _profile(self, name: str) -> Profile | None:
        raise NotImplementedError

    def _start(self, profile: Profile, takeover: bool = False) -> None:
        raise NotImplementedError

    def _on_name_refused(self, key: str, event: TunnelRefused) -> bool:
        """Handle a refusal of ``key``'s name; False if it is a refusal of another kind."""
        profile = self._profile(key)
        has_token = self.host is not None and bool(self.host.token)
        refusal = name_refusal(event.code, event.message, event.name or key, has_token)
        if refusal is None or profile is None:
            return False
        self.refusal_words[key] = refusal.message
        if refusal.wait is not None:
            self.holds[key] = time.monotonic() + refusal.wait
        if refusal.takeover and key not in self._took_over:
            self.push_screen(
                TakeoverScreen(key, profile.public_name, refusal.message),
                lambda take: self._after_takeover_question(key, bool(take)),
            )
        else:
            if key in self._took_over:
                message = f"{refusal.message} (a takeover was refused: another token has it)"
                self.refusal_words[key] = message
            self.notify(f"{key}: {self.refusal_words[key]}", severity="warning", timeout=8)
        self._refresh_sidebar(force=True)
        return True

    def _after_takeover_question(self, key: str, take: bool) -> None:
        profile = self._profile(key)
        if not take or profile is None:
            return  # wait: the countdown retries a held name when it is free
        self.holds.pop(key, None)
        self._took_over.add(key)
        self._start(profile, takeover=True)
        self.notify(f"{key}: taking '{profile.public_name}' over")

    def _forget_hold(self, key: str) -> None:
        """The user started or stopped the tunnel by hand: no countdown, no automatic retry."""
        self.holds.pop(key, None)
        self.refusal_words.pop(key, None)
        self._took_over.discard(key)

    def held_left(self) -> dict[str, int]:
        """Whole seconds until each held name is free (rounded up: never 0 while held)."""
        now = time.monotonic()
        return {key: max(1, math.ceil(until - now)) for key, until in self.holds.items()}

    def _tick_holds(self) -> None:
        """Once a second: the countdowns move; a name whose hold is over is asked for again."""
        if not self.holds or not self.is_running:
            return
        now = time.monotonic()
        for key in [k for k, until in self.holds.items() if until <= now]:
            del self.holds[key]
            self.refusal_words.pop(key, None)
            profile = self._profile(key)
            if profile is not None:
                self._start(profile)
        self._refresh_sidebar()

    def _in_dashboard_words(self, statuses: dict[str, TunnelStatus]) -> dict[str, TunnelStatus]:
        """The statuses, with a refused name's error in the dashboard's words."""
        words = self.refusal_words
        if not words:
            return statuses
        shown = dict(statuses)  # the tunnel thread's dict is not ours to change
        for key, status in statuses.items():
            if key in words and status.state == "online":
                self._forget_hold(key)  # it got its name: the refusal is over
            elif key in words and status.state == "error":
                shown[key] = dataclasses.replace(status, error=words[key])
        return shown
