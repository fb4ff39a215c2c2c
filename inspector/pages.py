"""JSON documents of stored exchanges written a page at a time: the HAR, the API's listing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from inspector.export import har_document, har_entry
from inspector.filters import Filter
from inspector.model import StoredExchange
from inspector.store import CaptureStore

PAGE_ROWS = 200
# Heads, bodies and messages read per page (one exchange more if it alone is bigger: up to twice
# the body cap). Its JSON is about 1.4 times that (base64), and is held twice while it is made:
# a few MiB whatever the store's size, and a store's worker thread busy for a few ms at a time.
PAGE_BYTES = 2 * 1024 * 1024
# The list the exchanges go in, in a document's skeleton (json.dumps writes a tuple as a list).
# Only the skeleton's JSON is searched for its one item; the skeleton is ours, never a visitor's.
HOLE = ("\x00exchanges\x00",)
_LAST_ID = 2**63 - 1  # SQLite's largest integer


class PagedDocument:
    """One JSON document whose one list (``HOLE`` in ``skeleton``) holds exchanges, each as
    ``item(exchange)``, read from the store a page at a time.

    ``next_piece(store)`` (on the store's thread: it reads and serialises) returns the next page
    as UTF-8 JSON text: with the document's start on the first call, its end on the last, after
    which ``done``. The pieces put together are byte for byte ``json.dumps(skeleton with the
    list filled in, indent=indent) + "\\n"``. Pages are read by id (keyset: each starts past the
    last id written, with the same filter and tunnel), so a page costs the same early and late:
    oldest first, the document ends at the newest exchange there was at the first page (a busy
    tunnel would otherwise keep it growing); newest first, it starts there. Exchanges evicted or
    cleared while it is written are left out.
    """

    def __init__(
        self,
        skeleton: Any,
        item: Callable[[StoredExchange], Any],
        flt: Filter | None = None,
        tunnel: str | None = None,
        *,
        newest_first: bool = False,
        limit: int | None = None,
        indent: int | None = None,
        rows: int | None = None,  # PAGE_ROWS
        max_bytes: int | None = None,  # PAGE_BYTES
    ) -> None:
        before, after = json.dumps(skeleton, indent=indent).split(json.dumps(HOLE[0]))
        cut, close = before.rindex("[") + 1, after.index("]")
        # "[" + lead + item + sep + item + trail + "]": lead and trail are "" without indent.
        self._head, self._lead = before[:cut], before[cut:]
        self._trail, self._tail = after[:close], after[close:] + "\n"
        self._sep = "," + (self._lead or " ")  # json.dumps' separators, indented or not
        self._item, self._indent = item, indent
        self._query: dict[str, Any] = {"tunnel": tunnel, "newest_first": newest_first}
        self._flt, self._limit = flt, limit
        self._rows, self._max_bytes = rows or PAGE_ROWS, max_bytes or PAGE_BYTES
        self._between: tuple[int, int] | None = None  # ids of the pages still to read
        self.written = 0  # exchanges
        self.done = False

    def _bounds(self, store: CaptureStore | None) -> tuple[int, int] | None:
        if store is None:  # no store file: nothing was captured
            return None
        if self._query["newest_first"]:
            return (0, _LAST_ID)
        newest = store.select(self._flt, tunnel=self._query["tunnel"], limit=1)  # no bodies
        return (0, newest[0].id + 1) if newest else None

    def _dump(self, e: StoredExchange) -> str:
        text = json.dumps(self._item(e), indent=self._indent)
        # Indented to where it sits in the document: a JSON text has no raw line break inside a
        # string, so every "\n" starts a line.
        return text.replace("\n", self._lead) if self._lead else text

    def next_piece(self, store: CaptureStore | None) -> bytes:
        """The document's next piece (b"" once done). ``store`` None: an empty document."""
        if self.done:
            return b""
        parts = []
        if self._between is None:
            parts.append(self._head.encode())
            self._between = self._bounds(store)
        want = self._rows if self._limit is None else min(self._rows, self._limit - self.written)
        page: list[StoredExchange] = []
        if self._between is not None and want > 0:
            assert store is not None
            page = store.select(
                self._flt, limit=want, full=True, between=self._between,
                max_bytes=self._max_bytes, **self._query,
            )  # fmt: skip
        # Ended when the page came short of what was asked for a reason other than its size.
        ended = len(page) < want and sum(e.held_bytes() for e in page) < self._max_bytes
        if page:
            low, high = self._between or (0, 0)
            last = page[-1].id
            self._between = (low, last) if self._query["newest_first"] else (last, high)
        page.reverse()
        while page:  # each exchange let go of once written: the page is held once, not twice
            e = page.pop()
            parts.append((self._lead if not self.written else self._sep).encode())
            parts.append(self._dump(e).encode())
            self.written += 1
        if ended or self._between is None or self.written == self._limit:
            parts.append(((self._trail if self.written else "") + self._tail).encode())
            self.done = True
        return b"".join(parts)


def har_pages(
    flt: Filter | None, tunnel: str | None, base_url: str | None = None, indent: int | None = None
) -> PagedDocument:
    """The HAR of the exchanges that pass, oldest first: ``har_log``'s document, in pages."""
    return PagedDocument(
        har_document(HOLE), lambda e: har_entry(e, base_url), flt, tunnel, indent=indent
    )
