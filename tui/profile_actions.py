"""The dashboard's profile actions: add, edit and delete through modal forms, saved safely."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import App

from profiles.errors import ProfilesChangedOnDisk, ProfilesError
from profiles.model import Profile, ProfilesFile
from profiles.store import LoadedProfiles, save
from tui.screens.confirm import ConfirmScreen
from tui.screens.profile_form import ProfileFormScreen
from tui.widgets.tunnel_list import TunnelList

if TYPE_CHECKING:
    from relay.host import TunnelHost


class ProfileActions(App[None]):
    """Mixed into MolehillApp; uses its ``loaded`` profiles and ``host``."""

    loaded: LoadedProfiles | None
    host: TunnelHost | None

    def _selected_profile(self) -> Profile | None:
        raise NotImplementedError

    def _load_profiles(self) -> bool:
        raise NotImplementedError

    def _refresh_sidebar(self, force: bool = False) -> None:
        raise NotImplementedError

    def _refresh_main(self) -> None:
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
            if self._save(new, f"saved '{profile.name}'") and self.host is not None:
                self.host.stop_tunnel(existing.name)  # its settings changed: restart by hand

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
