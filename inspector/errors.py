"""What can go wrong with the capture store: one exception family the front ends catch and show."""

from __future__ import annotations

from pathlib import Path


class StoreError(Exception):
    """The capture store cannot be used; ``path`` names the file; tunnels run on without it."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"capture store {path}: {message}")


class StoreCorrupt(StoreError):
    """The file is not a capture store SQLite can read (damaged, or not SQLite at all)."""


class StoreLocked(StoreError):
    """Another process holds the file's lock longer than the busy timeout."""


class StoreTooNew(StoreError):
    """The file was written by a newer molehill, whose layout this one does not know."""


class StoreMissing(StoreError):
    """Nothing has been captured yet: the file does not exist (only raised when not creating)."""
