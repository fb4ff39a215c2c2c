"""The dashboard's link to the capture store: the writer its tunnels feed, and history on open."""

from __future__ import annotations

import threading

from inspector import (
    CaptureSettings,
    CaptureStore,
    CaptureWriter,
    StoreError,
    open_store,
    open_writer,
)
from inspector.originals import OriginalRequest
from profiles.model import Profile
from relay.events import RequestRecord
from tui.captures import CLOSE_WAIT
from tui.log_records import StoredRecord, from_exchange, trimmed

LOOKUP_WINDOW = 500  # newest stored exchanges of a tunnel searched for a live row's id


class DashboardCaptures:
    """Opens the writer (or says why it could not), feeds it from the tunnel thread (``sink``),
    and reads the store back for history and replays. ``settings`` None: captures off."""

    def __init__(self, settings: CaptureSettings | None) -> None:
        self.settings = settings or CaptureSettings(enabled=False)
        self.writer: CaptureWriter | None = None
        self.problem = ""  # why the store could not be opened, with its path
        self.failed_later = ""  # why the store stopped while running (disk full, ...)
        self._targets: dict[str, str] = {}  # profile -> its local app's URL (for replays)
        self._off: set[str] = set()  # profiles with capture = false
        self._reader: CaptureStore | None = None  # the UI side's own connection
        self.lock = threading.Lock()  # one user of that connection at a time (UI, replays)
        self.attached = False  # a service writes the store: read it, never open a writer

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def open(self) -> None:
        if not self.settings.enabled:
            return
        try:
            self.writer = open_writer(self.settings, on_error=self._failed)
        except StoreError as exc:
            self.problem = f"request history is off: {exc}"

    def _failed(self, exc: StoreError) -> None:
        self.failed_later = f"request history stopped: {exc}"

    def body_bytes(self, capture_bytes: int) -> int:
        """Body bytes the agents keep: the store's cap while it is written to."""
        if self.writer is None:
            return capture_bytes
        return max(capture_bytes, self.settings.body_cap)

    def for_log(self, records: list[RequestRecord], cap: int) -> list[RequestRecord]:
        """The records as the log keeps them: bodies cut to ``cap`` (the agents keep up to the
        store's cap while captures are on; the ring of thousands of rows should not)."""
        if self.writer is None or cap >= self.settings.body_cap:
            return records
        return [trimmed(r, cap) for r in records]

    def original(self, profile_name: str, record: RequestRecord) -> OriginalRequest | None:
        """The writer's in-memory copy of a row's request (whole, unredacted), if it has one."""
        if self.writer is None:
            return None
        exchange_id = self.stored_id(profile_name, record)
        return None if exchange_id is None else self.writer.originals.get(exchange_id)

    def track(self, profile: Profile, local_url: str) -> None:
        """Before a profile's tunnel starts: where its app is, and whether it is kept."""
        self._targets[profile.name] = local_url
        if profile.capture:
            self._off.discard(profile.name)
        else:
            self._off.add(profile.name)

    def target(self, profile_name: str) -> str:
        return self._targets.get(profile_name, "")

    def sink(self, profile_name: str, record: RequestRecord) -> None:
        """On the tunnel thread: queue one exchange (never blocks; see CaptureWriter.submit)."""
        writer = self.writer
        if writer is not None and profile_name not in self._off:
            writer.submit(profile_name, record, self._targets.get(profile_name, ""))

    def store(self) -> CaptureStore:
        """The UI side's connection to the store (reads, and replays' writes); raises
        StoreError."""
        if self._reader is None:
            self._reader = open_store(self.settings, create=True)
        return self._reader

    def history(self, names: list[str], limit: int) -> dict[str, list[StoredRecord]]:
        """Each profile's newest ``limit`` stored exchanges, oldest first; raises StoreError."""
        with self.lock:
            store = self.store()
            found = {name: store.select(tunnel=name, limit=limit, full=True) for name in names}
        return {name: [from_exchange(e) for e in reversed(kept)] for name, kept in found.items()}

    def stored_id(self, profile_name: str, record: RequestRecord) -> int | None:
        """The store's id for a live row, once the writer has stored it (None: not kept)."""
        if isinstance(record, StoredRecord) and record.exchange_id is not None:
            return record.exchange_id
        if (self.writer is None and not self.attached) or profile_name in self._off:
            return None
        if self.writer is not None:
            self.writer.flush()
        with self.lock:
            recent = self.store().select(tunnel=profile_name, limit=LOOKUP_WINDOW)
        for e in recent:
            if e.time == record.time and e.method == record.method:
                return e.id
        return None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self.writer is not None:
            # Quitting does not wait for a store that is behind: it finishes on its own.
            self.writer.close(CLOSE_WAIT)
            self.writer = None
