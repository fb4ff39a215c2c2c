"""Where the capture store lives and how much it keeps: one settings object for every front end."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from platformdirs import user_data_path

ENV_FILE = "MOLEHILL_CAPTURE_FILE"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_BODY_CAP = 10 * 1024 * 1024
DEFAULT_REDACT_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie")
DEFAULT_REDACT_KEYS = (
    "password",
    "token",
    "secret",
    "api_key",
    "access_token",
    "client_secret",
)


def default_capture_file() -> Path:
    """``$MOLEHILL_CAPTURE_FILE`` if set, else ``captures.sqlite3`` in the user's data directory."""
    env = os.environ.get(ENV_FILE)
    if env:
        return Path(env).expanduser()
    return user_data_path("molehill") / "captures.sqlite3"


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    """What the capture store keeps, where, and what it hides.

    ``path`` None means :func:`default_capture_file`. ``redact_headers`` and ``redact_keys`` are
    added to the defaults (which always apply: a setting cannot unhide an Authorization header).
    """

    enabled: bool = True
    path: Path | None = None
    max_bytes: int = DEFAULT_MAX_BYTES  # the whole store; the oldest exchanges go first
    body_cap: int = DEFAULT_BODY_CAP  # per body; longer ones are cut and marked truncated
    redact_headers: tuple[str, ...] = field(default=())
    redact_keys: tuple[str, ...] = field(default=())
    queue_size: int = 50_000  # exchanges waiting to be stored; beyond it they are dropped
    queue_bytes: int = 128 * 1024 * 1024  # their heads and bodies, at most; beyond, dropped too
    batch_size: int = 500  # exchanges per transaction at most
    busy_timeout: float = 5.0  # seconds to wait for another process's lock before giving up
    # WebSocket messages / SSE events kept per connection (the agents' message_cap); the rest
    # are counted, not kept. 0: none are read.
    messages_per_connection: int = 1000

    def __post_init__(self) -> None:
        for name in ("max_bytes", "queue_size", "queue_bytes", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"capture setting {name} must be at least 1")
        if self.body_cap < 0:
            raise ValueError("capture setting body_cap must be 0 or more")
        if self.messages_per_connection < 0:
            raise ValueError("capture setting messages_per_connection must be 0 or more")

    @property
    def file(self) -> Path:
        return self.path if self.path is not None else default_capture_file()

    @property
    def all_redact_headers(self) -> frozenset[str]:
        return frozenset(h.lower() for h in (*DEFAULT_REDACT_HEADERS, *self.redact_headers))

    @property
    def all_redact_keys(self) -> frozenset[str]:
        return frozenset(k.lower() for k in (*DEFAULT_REDACT_KEYS, *self.redact_keys))


def settings_json(settings: CaptureSettings) -> str:
    """The settings as JSON, for the writer process (the file's path resolved)."""
    data = asdict(settings)
    data["path"] = str(settings.file)
    return json.dumps(data)
