"""The sidebar: every profile with its live state and public URL, plus the merged view."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from relay.host import TunnelStatus

ALL = "__all__"
STATE_STYLES = {
    "online": ("●", "green"),
    "connecting": ("◌", "yellow"),
    "reconnecting": ("◌", "yellow"),
    "error": ("✖", "red"),
    "stopped": ("○", "grey50"),
    "held": ("◷", "yellow"),
}


def entry(name: str, local: str, status: TunnelStatus | None, held_left: int | None = None) -> Text:
    """Three short lines: the state, the local address, then the URL, the countdown to a held
    name's release, or the error (the line above the log shows the whole of it)."""
    state = status.state if status else "stopped"
    if held_left is not None and state in ("error", "stopped"):
        state = "held"
    mark, colour = STATE_STYLES.get(state, ("?", "white"))
    text = Text()
    text.append(f"{mark} ", style=colour)
    text.append(name, style="bold")
    text.append(f"  {state}", style=colour)
    text.append(f"\n  {local}", style="dim")
    if state == "held":
        # Short enough for the narrowest sidebar (20 columns at 80x24): never cut.
        text.append(f"\n  retry in {held_left} s", style="yellow")
    elif status and status.url and state in ("online", "reconnecting"):
        text.append(f"\n  {status.url}", style="cyan")
    elif status and status.error and state != "online":
        text.append(f"\n  {status.error}", style="red")
    if status and status.app:  # the profile's command: "app ready since 12:03:04"
        ok = status.app.startswith(("app ready", "app starting"))
        text.append(f"\n  {status.app}", style="green" if ok else "yellow")
    return text


class TunnelList(OptionList):
    """One option per profile; the first option merges every tunnel's log."""

    def set_entries(
        self,
        entries: list[tuple[str, str]],
        statuses: dict[str, TunnelStatus],
        held: dict[str, int] | None = None,
    ) -> None:
        """``entries`` are (profile name, local address); ``held``: seconds until a profile's
        held name is free. Keeps the highlight where it was."""
        current = self.highlighted_key
        held = held or {}
        options = [Option(Text("≡ all tunnels", style="bold"), id=ALL)]
        options += [
            Option(entry(name, local, statuses.get(name), held.get(name)), id=name)
            for name, local in entries
        ]
        self.set_options(options)
        ids = [o.id for o in options]
        self.highlighted = ids.index(current) if current in ids else (1 if len(ids) > 1 else 0)

    @property
    def highlighted_key(self) -> str | None:
        if self.highlighted is None:
            return None
        return self.get_option_at_index(self.highlighted).id

    def select_key(self, key: str) -> None:
        """Highlight the option with this id, if there is one."""
        for index in range(self.option_count):
            if self.get_option_at_index(index).id == key:
                self.highlighted = index
                return
