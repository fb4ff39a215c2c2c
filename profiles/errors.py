"""Errors raised by the profiles package, each with a message a person can act on."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Exit codes the command line returns for these errors. Bad input (a broken file, an invalid
# value on the command line) is 2, like argparse's own usage errors; I/O and state problems are 1.
EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


class ProfilesError(Exception):
    """Base of every profiles error: `str(error)` is the whole human message."""

    exit_code: int = EXIT_FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one setting: where it is (TOML table and key) and what to do."""

    table: str  # "profiles.frontend", "relay", or "" for the top level of the file
    key: str | None  # None when the whole table is at fault
    message: str

    @property
    def location(self) -> str:
        """Where the problem is, written the way the TOML file spells it."""
        table = f"[{self.table}]" if self.table else "top level"
        return f"{table} {self.key}" if self.key else table

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class InvalidProfiles(ProfilesError):
    """One or more settings are invalid: wrong type, out of range, unknown key, clashing names."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, problems: Iterable[Problem], path: Path | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.path = path
        super().__init__(self._render())

    def in_file(self, path: Path) -> InvalidProfiles:
        """The same problems, reported as coming from the file at `path`."""
        return InvalidProfiles(self.problems, path)

    def _render(self) -> str:
        lines = [f"  {problem}" for problem in self.problems]
        if self.path is None:
            return "invalid settings:\n" + "\n".join(lines)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        return (
            f"{self.path} has {count} {noun}:\n"
            + "\n".join(lines)
            + "\nFix the file by hand; molehill never rewrites a file it cannot read."
        )


class ProfilesSyntaxError(ProfilesError):
    """The file is not valid TOML (or not UTF-8); it is left exactly as it is."""

    exit_code = EXIT_BAD_INPUT

    def __init__(
        self, path: Path, line: int, column: int, detail: str, source_line: str | None = None
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.detail = detail
        message = f"{path}:{line}:{column}: not valid TOML: {detail}"
        if source_line and source_line.strip():
            # Show the offending line with a caret, like a compiler, so the fix is obvious.
            caret = " " * (max(column, 1) - 1) + "^"
            message += f"\n    {source_line}\n    {caret}"
        message += "\nFix the file by hand; molehill has not changed it."
        super().__init__(message)


class ProfilesFileUnreadable(ProfilesError):
    """The profiles file exists (or should) but cannot be read."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(
            f"cannot read profiles file {path}: {reason}\n"
            "Check the path and its permissions, or pick another file with --profiles PATH "
            "or MOLEHILL_PROFILES."
        )


class ProfilesFileUnwritable(ProfilesError):
    """The profiles file or its directory cannot be created or written."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(
            f"cannot write profiles file {path}: {reason}\n"
            "Nothing was changed. Check that the directory exists and is writable, or pick "
            "another file with --profiles PATH or MOLEHILL_PROFILES."
        )


class ProfilesChangedOnDisk(ProfilesError):
    """The file changed on disk after it was loaded; saving would overwrite someone's edit."""

    def __init__(self, path: Path, *, created: bool = False, removed: bool = False) -> None:
        self.path = path
        if created:
            what = "was created by someone else after molehill looked for it"
        elif removed:
            what = "was removed after molehill loaded it"
        else:
            what = "was changed on disk after molehill loaded it"
        super().__init__(
            f"profiles file {path} {what}; not saving, so that change is not lost.\n"
            "Reload the file and make your change again."
        )


class ProfileNotFound(ProfilesError):
    """No profile has the given name."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        if known:
            hint = "known profiles: " + ", ".join(known)
        else:
            hint = "there are no profiles yet; add one with: molehill profiles add NAME --port PORT"
        super().__init__(f"no profile named '{name}' ({hint})")


class ProfileAlreadyExists(ProfilesError):
    """A profile with that name exists already."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"a profile named '{name}' already exists; change it with: "
            f"molehill profiles edit {name} ..., or remove it first"
        )
