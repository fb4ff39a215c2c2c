"""The dashboard's profile actions: add, edit and delete through modal forms, saved safely;
copy or open a tunnel's public URL, saying honestly what happened."""

from __future__ import annotations

import os
import sys
import webbrowser
from pathlib import PurePath
from typing import TYPE_CHECKING

from textual import work
from textual.app import App

from profiles.errors import ProfilesChangedOnDisk, ProfilesError
from profiles.model import Profile, ProfilesFile
from profiles.store import LoadedProfiles, save
from tui.screens.confirm import ConfirmScreen
from tui.screens.profile_form import ProfileFormScreen
from tui.widgets.tunnel_list import ALL, TunnelList

if TYPE_CHECKING:
    from relay.agent import AgentSettings
    from relay.host import TunnelHost, TunnelStatus

RUNNING = ("online", "connecting", "reconnecting")  # states in which an edit restarts a tunnel

# Text browsers webbrowser falls back to: they would take over the dashboard's terminal.
TERMINAL_BROWSERS = {"www-browser", "links", "links2", "elinks", "lynx", "w3m", "browsh"}
COPY_NOTE = (
    "Sent to the terminal's clipboard (OSC 52):\n{url}\nTerminals cannot confirm it and some "
    "ignore it (in tmux: set -g set-clipboard on). If nothing was copied, select the URL here."
)


def find_browser() -> webbrowser.BaseBrowser | str:
    """The browser to open pages with, or why there is none. May run programs (xdg-settings):
    call it off the UI thread."""
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        headless = sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        )
        return "no graphical session (DISPLAY is not set)" if headless else "no browser found"
    name = PurePath(str(getattr(browser, "name", ""))).name
    if name in TERMINAL_BROWSERS:
        return f"the only browser found, {name}, runs in this terminal"
    return browser


class ProfileActions(App[None]):
    """Mixed into MolehillApp; uses its ``loaded`` profiles, ``host``, ``statuses`` and the
    ``selected`` sidebar entry."""

    loaded: LoadedProfiles | None
    host: TunnelHost | None
    statuses: dict[str, TunnelStatus]
    selected: str

    def _selected_profile(self) -> Profile | None:
        raise NotImplementedError

    def _load_profiles(self) -> bool:
        raise NotImplementedError

    def _refresh_sidebar(self, force: bool = False) -> None:
        raise NotImplementedError

    def _refresh_main(self) -> None:
        raise NotImplementedError

    def _settings(self, profile: Profile, takeover: bool = False) -> AgentSettings:
        raise NotImplementedError

    # -- profiles --------------------------------------------------------------------------

    def _taken(self, except_name: str | None = None) -> set[str]:
        if self.loaded is None:
            return set()
        return {p.public_name for p in self.loaded.file.profiles.values() if p.name != except_name}

    def action_add_profile(self) -> None:
        def added(profile: Profile | None) -> None:
            if profile is not None and self.loaded is not None:
                if profile.name in self.loaded.file.profiles:
                    self.notify(f"a profile named '{profile.name}' exists", severity="error")
                    return
                if self._save(self.loaded.file.with_added(profile), f"added '{profile.name}'"):
                    self.query_one(TunnelList).select_key(profile.name)

        self.push_screen(ProfileFormScreen(taken=self._taken()), added)

    def action_edit_profile(self) -> None:
        existing = self._selected_profile()
        if existing is None:
            return

        def edited(profile: Profile | None) -> None:
            if profile is None or self.loaded is None:
                return
            file = self.loaded.file
            if profile.name != existing.name:
                if profile.name in file.profiles:
                    self.notify(f"a profile named '{profile.name}' exists", severity="error")
                    return
                new = file.without(existing.name).with_added(profile)
            else:
                new = file.with_replaced(profile)
            status = self.statuses.get(existing.name)
            running = status is not None and status.state in RUNNING
            done = f"saved '{profile.name}'"
            if running:
                done += " — restarted with the new settings"
            if self._save(new, done) and running and self.host is not None:
                # A deliberate stop frees the name at once, so an unchanged public name is
                # given straight back to the restarted tunnel.
                self.host.restart_tunnel(existing.name, profile.name, self._settings(profile))

        self.push_screen(ProfileFormScreen(existing, self._taken(existing.name)), edited)

    def action_delete_profile(self) -> None:
        profile = self._selected_profile()
        if profile is None:
            return

        def confirmed(yes: bool | None) -> None:
            if not yes or self.loaded is None:
                return
            saved = self._save(self.loaded.file.without(profile.name), f"deleted '{profile.name}'")
            if saved and self.host is not None:
                self.host.stop_tunnel(profile.name)

        self.push_screen(ConfirmScreen(f"Delete profile '{profile.name}'?", "Delete"), confirmed)

    def _save(self, new: ProfilesFile, done: str) -> bool:
        assert self.loaded is not None
        try:
            self.loaded = save(self.loaded.with_file(new))
        except ProfilesChangedOnDisk as exc:
            self.push_screen(
                ConfirmScreen(f"{exc}\n\nReload it now? (your change is dropped)", "Reload"),
                self._reload_after_conflict,
            )
            return False
        except ProfilesError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return False
        self.notify(done)
        self._refresh_sidebar(force=True)
        self._refresh_main()
        return True

    def _reload_after_conflict(self, reload: bool | None) -> None:
        if reload:
            self._load_profiles()

    # -- the public URL --------------------------------------------------------------------

    def _url(self) -> str | None:
        if self.selected == ALL:
            self.notify("select a tunnel in the sidebar first", severity="warning")
            return None
        status = self.statuses.get(self.selected)
        if status is None or not status.url:
            self.notify("this tunnel has no public URL yet: start it with s", severity="warning")
            return None
        return status.url

    def action_copy_url(self) -> None:
        # OSC 52 asks the terminal to set its clipboard; no answer comes back, so say just that.
        if (url := self._url()) is not None:
            self.copy_to_clipboard(url)
            self.notify(COPY_NOTE.format(url=url), title="Copy URL", timeout=12, markup=False)

    def action_open_url(self) -> None:
        if (url := self._url()) is not None:
            self._open_in_browser(url)

    @work(thread=True, exclusive=True, group="browser")
    def _open_in_browser(self, url: str) -> None:
        """Finding the browser may run programs, and a browser may take a while to start."""
        found = find_browser()
        if isinstance(found, str):
            why = found
        elif found.open(url):
            self.call_from_thread(self.notify, f"Asked your browser to open {url}", markup=False)
            return
        else:
            why = "the browser did not start"
        self.call_from_thread(
            self.notify,
            f"Cannot open a browser here: {why}. Open the URL on a machine with a browser:\n{url}",
            title="Open URL",
            severity="warning",
            timeout=15,
            markup=False,
        )
