"""The inspector: every exchange kept in a capture store on disk, redacted, filterable, exportable.

The one entry point for a front end that runs tunnels::

    from inspector import CaptureSettings, StoreError, open_writer

    try:
        writer = open_writer(CaptureSettings())  # None when settings.enabled is False
    except StoreError as exc:  # corrupt, locked, newer version: show it, run without captures
        writer = None
    ...
    writer.submit(tunnel_name, record)  # from the data path: never blocks, never raises
    ...
    writer.close()  # at exit: stores what is queued

``writer.error`` holds a StoreError that happened while running (the writer then stops writing),
``writer.dropped`` counts exchanges not kept. Records need a ``Capture`` for heads and bodies to be
stored: give the agent ``capture_bytes`` up to the body cap. Readers (`molehill requests`) open a
:class:`CaptureStore` on the same file with ``create=False``.
"""

from __future__ import annotations

from collections.abc import Callable

from inspector.errors import StoreCorrupt, StoreError, StoreLocked, StoreMissing, StoreTooNew
from inspector.filters import Filter, FilterError, parse
from inspector.settings import CaptureSettings, default_capture_file
from inspector.store import CaptureStore
from inspector.writer import CaptureWriter

__all__ = [
    "CaptureSettings",
    "CaptureStore",
    "CaptureWriter",
    "Filter",
    "FilterError",
    "StoreCorrupt",
    "StoreError",
    "StoreLocked",
    "StoreMissing",
    "StoreTooNew",
    "default_capture_file",
    "open_store",
    "open_writer",
    "parse",
]


def open_store(settings: CaptureSettings, create: bool = False) -> CaptureStore:
    """Open the store ``settings`` points at, for reading (raises StoreMissing if none yet)."""
    return CaptureStore(
        settings.file,
        create=create,
        max_bytes=settings.max_bytes,
        busy_timeout=settings.busy_timeout,
    )


def open_writer(
    settings: CaptureSettings, on_error: Callable[[StoreError], None] | None = None
) -> CaptureWriter | None:
    """A running writer on the store ``settings`` points at, or None if captures are off.

    Raises :class:`StoreError` (with the file's path) if the store cannot be opened; the caller
    shows it and keeps running without captures. ``on_error`` is called (on a thread of the
    writer's) if the store fails later. The writer runs two processes of its own
    (:mod:`inspector.spooler` and the idle-priority :mod:`inspector.capture_process`);
    ``close()`` ends them.
    """
    if not settings.enabled:
        return None
    return CaptureWriter(settings, on_error)
