"""The profiles file's ``[relay]`` table: which relay (or cluster nodes) to use, and its token."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from profiles.errors import InvalidProfiles, Problem
from profiles.validate import relay_url_problem, token_problem, toml_type_name

MAX_RELAY_URLS = 8  # links one tunnel may hold (one per cluster node it is given)


def relay_urls_problem(url: object) -> str | None:
    """Why ``url`` (one URL, or a list of them: a link through each) is unusable, or None."""
    if not isinstance(url, list | tuple):
        return relay_url_problem(url)
    if not url:
        return 'is an empty list; give one URL or several (["wss://a...", "wss://b..."])'
    if len(url) > MAX_RELAY_URLS:
        return f"lists {len(url)} URLs; at most {MAX_RELAY_URLS} (a link through each)"
    problems = []
    for number, entry in enumerate(url, 1):
        if entry is None:
            problem: str | None = f"must be a string, got {toml_type_name(entry)}"
        else:
            problem = relay_url_problem(entry)
        if problem is None and entry in url[: number - 1]:
            problem = f"{entry!r} is listed twice; list each node once"
        if problem:
            problems.append(f"entry {number}: {problem}")
    return "; ".join(problems) or None


RELAY_CHECKS: dict[str, Callable[[object], str | None]] = {
    "url": relay_urls_problem,
    "token": token_problem,
}


@dataclass(frozen=True)
class RelaySettings:
    """Which relay to use and the token it wants; both unset means "use an embedded relay".

    ``url`` is one ws:// or wss:// URL, or a list of them: the profiles' tunnels then hold a
    link through each (the nodes of one cluster), under one name.
    """

    url: str | tuple[str, ...] | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.url, list):  # a TOML array; a tuple keeps the settings immutable
            object.__setattr__(self, "url", tuple(self.url))
        problems = []
        for key, check in RELAY_CHECKS.items():
            problem = check(getattr(self, key))
            if problem:
                problems.append(Problem("relay", key, problem))
        if problems:
            raise InvalidProfiles(problems)

    @property
    def urls(self) -> tuple[str, ...]:
        """Every relay URL, in the file's order (empty: none set)."""
        if self.url is None:
            return ()
        return (self.url,) if isinstance(self.url, str) else self.url

    @property
    def first_url(self) -> str | None:
        """The first relay URL, or None (the one a single-link tunnel uses)."""
        return self.urls[0] if self.urls else None
