"""Replay, edit-and-replay and diff for the dashboard's details screen.

A live row carries the request as the app got it (unredacted: the in-memory original, as the
local API uses); a history row has only the store's redacted copy. The answer is stored linked
to the original (``replay_of``) and becomes a row of the log; ``diff`` compares the two answers.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inspector.diff import ResponseDiff, diff_responses
from inspector.message import ReplayRequest
from inspector.model import StoredExchange, payload, prepare
from inspector.originals import OriginalRequest
from inspector.redact import MARKER, Redactor
from inspector.replay import NotReplayable, Replayed, ReplayError, replay, store_replay
from inspector.resign import resign
from profiles.model import Profile
from relay.events import RequestRecord
from tui.dashboard_captures import DashboardCaptures
from tui.log_records import StoredRecord, as_replay, from_exchange
from tui.service.client import ServiceGone
from tui.service.remote import RemoteHost

MAX_LINKS = 1000  # originals whose latest replay `d` can find


@dataclass(slots=True)
class ReplayDone:
    """A replay's row for the log, and what the user should know about it."""

    tunnel: str
    record: StoredRecord
    url: str
    notes: list[str] = field(default_factory=list)


class Replayer:
    """Sends rows again; ``profile(name)`` gives a tunnel's profile (its webhook secrets)."""

    def __init__(
        self,
        captures: DashboardCaptures,
        profile: Callable[[str], Profile | None],
        service: Callable[[], RemoteHost | None] = lambda: None,
    ) -> None:
        self.captures = captures
        self.profile = profile
        self.service = service  # the attached service, which replays what its tunnels captured
        settings = captures.settings
        self.redactor = Redactor(settings.all_redact_headers, settings.all_redact_keys)
        # id(original row) -> (that row, its latest replay); the row is kept so the id stays its.
        self._latest: dict[int, tuple[RequestRecord, StoredRecord]] = {}

    async def request_for(self, tunnel: str, record: RequestRecord) -> tuple[ReplayRequest, bool]:
        """The request to send, and whether it is the store's redacted copy: the row's own, or
        the capture writer's whole copy when the log kept only part of the body."""
        capture = record.capture
        if capture is not None and capture.request_truncated:
            original = await asyncio.to_thread(self.captures.original, tunnel, record)
            if original is not None and not original.truncated:
                return ReplayRequest.from_head(original.head, original.body), False
        return self.request_of(record)

    def request_of(self, record: RequestRecord) -> tuple[ReplayRequest, bool]:
        """The row's own request, and whether it is the store's redacted copy."""
        capture = record.capture
        if capture is None or not capture.request_head:
            raise NotReplayable("this request's head was not captured; it cannot be replayed")
        if capture.request_truncated:
            raise NotReplayable(
                f"its body was kept only in part ({len(capture.request_body)} bytes); it cannot "
                "be replayed exactly (molehill --capture-bytes N keeps more)"
            )
        body = payload(capture.request_head, capture.request_body)
        request = ReplayRequest.from_head(capture.request_head, body)
        return request, isinstance(record, StoredRecord) and record.history

    async def replay(
        self, tunnel: str, record: RequestRecord, edited: ReplayRequest | None = None
    ) -> ReplayDone:
        """Send the row's request (or ``edited``) to the tunnel's local app; raises ReplayError
        (NotReplayable, the app not answering) or ResignError."""
        service = self.service()
        if service is not None and self.captures.attached:
            return await self._replay_in_service(service, tunnel, record, edited)
        outgoing, from_store = await self.request_for(tunnel, record)
        captured = outgoing  # an edit is signed afresh only if this was signed by the sender
        if edited is not None:
            outgoing = edited
        profile = self.profile(tunnel)
        secrets = dict(profile.webhook_secrets) if profile is not None else {}
        notes = resign(
            outgoing,
            secrets,
            body_redacted=from_store and MARKER.encode() in outgoing.body,
            captured=captured,
        )
        target = self.captures.target(tunnel) or (profile.local_url if profile else "")
        exchange = self._exchange(tunnel, record, target)
        context = None
        if profile is not None and profile.local_insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        done = await replay(exchange, outgoing, target=target or None, ssl_context=context)
        new_id = original_id = None
        if self.captures.writer is not None:
            original_id, new_id = await asyncio.to_thread(
                self._store, tunnel, record, exchange, done
            )
            head = done.sent[: done.sent.index(b"\r\n\r\n") + 4]
            self.captures.writer.originals.put(new_id, OriginalRequest(head, outgoing.body, False))
        row = as_replay(done.record, record, new_id, original_id)
        self._remember(record, row)
        return ReplayDone(tunnel, row, done.url, notes)

    async def _replay_in_service(
        self,
        service: RemoteHost,
        tunnel: str,
        record: RequestRecord,
        edited: ReplayRequest | None,
    ) -> ReplayDone:
        """The service replays it: it holds the originals (secrets the store redacts) of what
        its tunnels captured, even while no dashboard was attached, and stores the answer."""
        exchange_id = await asyncio.to_thread(self.captures.stored_id, tunnel, record)
        if exchange_id is None:
            raise NotReplayable("this request is not in the request history; it cannot be replayed")
        options: dict[str, Any] = {}
        if edited is not None:
            options["edit"] = {
                "method": edited.method,
                "target": edited.target,
                "headers": [[name, value] for name, value in edited.headers],
                "body_base64": base64.b64encode(edited.body).decode("ascii"),
            }
        try:
            reply = await asyncio.wrap_future(service.replay(exchange_id, options))
        except ServiceGone as exc:
            raise ReplayError(f"the service went away: {exc}") from None
        if not reply.get("ok") or not isinstance(reply.get("replay"), dict):
            raise ReplayError(str(reply.get("error") or "the service could not replay it"))
        done = reply["replay"]
        new_id = int(done["id"])
        stored = await asyncio.to_thread(self._stored, new_id)
        if stored is None:
            raise ReplayError(f"the replay (#{new_id}) is not in the request history")
        row = as_replay(from_exchange(stored), record, new_id, exchange_id)
        self._remember(record, row)
        return ReplayDone(tunnel, row, str(done.get("url", "")), list(done.get("notes") or []))

    def _stored(self, exchange_id: int) -> StoredExchange | None:
        with self.captures.lock:
            return self.captures.store().get(exchange_id)

    def _remember(self, record: RequestRecord, row: StoredRecord) -> None:
        self._latest.pop(id(record), None)
        self._latest[id(record)] = (record, row)
        while len(self._latest) > MAX_LINKS:  # the oldest links go first
            del self._latest[next(iter(self._latest))]

    def _exchange(self, tunnel: str, record: RequestRecord, target: str) -> StoredExchange:
        return prepare(
            tunnel, record, self.redactor, self.captures.settings.body_cap, target=target
        )

    def _store(
        self, tunnel: str, record: RequestRecord, exchange: StoredExchange, done: Replayed
    ) -> tuple[int | None, int]:
        exchange.id = self.captures.stored_id(tunnel, record) or 0
        cap = self.captures.settings.body_cap
        with self.captures.lock:
            new_id = store_replay(self.captures.store(), exchange, done, self.redactor, cap)
        return exchange.id or None, new_id

    def diff(self, tunnel: str, record: RequestRecord) -> ResponseDiff | None:
        """The row's answer against its replay's (or a replay's against its original's);
        None if the row has not been replayed in this session."""
        if isinstance(record, StoredRecord) and record.original is not None:
            original, replayed = record.original, record
        elif (link := self._latest.get(id(record))) is not None and link[0] is record:
            original, replayed = link
        else:
            return None
        a = self._exchange(tunnel, original, "")
        b = self._exchange(tunnel, replayed, "")
        a.id = (replayed.replay_of or 0) if isinstance(replayed, StoredRecord) else 0
        b.id = replayed.exchange_id or 0
        return diff_responses(a, b)
