"""The lines above the request log: the selected tunnel and its URL, the merged view, or how to
begin when there are no profiles."""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text

from profiles.model import Profile
from relay.host import TunnelStatus
from tui.widgets.steady_static import SteadyStatic


class TunnelInfo(SteadyStatic):
    """Shows what the log below belongs to (redrawn only when that changes)."""

    def show_no_profiles(self, path: Path) -> None:
        self.show(
            Text(
                "No profiles yet. Press n to add one (say 'frontend' on port 3000), then s to "
                f"start it. Profiles are kept in {path}",
                style="bold",
            )
        )

    def show_all(self, statuses: dict[str, TunnelStatus]) -> None:
        online = sum(1 for s in statuses.values() if s.state == "online")
        text = Text(f"All tunnels · {online} online", style="bold")
        down = [s.key for s in statuses.values() if s.state == "online" and s.stats.app_down]
        if down:
            text.append(f" · local app down: {', '.join(sorted(down))}", style="bold red")
        self.show(text)

    def show_tunnel(self, name: str, profile: Profile | None, status: TunnelStatus | None) -> None:
        text = Text()
        text.append(name, style="bold")
        if profile is not None:
            text.append(f"  {profile.local_address}", style="dim")
        if status is None or status.state == "stopped":
            text.append("  stopped · press s to start", style="grey50")
        elif status.state == "online":
            text.append(f"  → {status.url}", style="cyan")
            if status.links:  # several links (cluster nodes): how many are up, which are down
                lost = "down:" in status.links
                text.append(f"  · {status.links}", style="yellow" if lost else "dim")
            down = status.stats.app_down
            if down is not None:
                clock = time.strftime("%H:%M:%S", time.localtime(down.since))
                text.append(f"\n{down.describe(clock)}", style="bold red")
        else:
            text.append(f"  {status.state}", style="yellow" if status.state != "error" else "red")
            if status.error:
                text.append(f"\n{status.error}", style="red")
        self.show(text)
