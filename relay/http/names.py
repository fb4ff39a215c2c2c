"""Public tunnel names: DNS label rules, random readable names, and Host header routing."""

from __future__ import annotations

import re
import secrets

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

ADJECTIVES = (
    "amazing", "brave", "bright", "calm", "clever", "cosmic", "crisp", "daring", "eager", "fancy",
    "fluffy", "gentle", "golden", "happy", "jolly", "keen", "lively", "lucky", "mellow", "merry",
    "mighty", "nimble", "noble", "plucky", "proud", "quick", "quiet", "rapid", "shiny", "silent",
    "smooth", "snappy", "sunny", "swift", "tidy", "vivid", "warm", "witty", "zany", "zesty",
)  # fmt: skip
NOUNS = (
    "badger", "beaver", "coder", "comet", "falcon", "ferret", "gecko", "heron", "koala", "lemur",
    "lynx", "meadow", "mole", "otter", "panda", "pixel", "puffin", "quokka", "rabbit", "raven",
    "robin", "rocket", "salmon", "sparrow", "tiger", "toucan", "walrus", "wombat", "yak", "zebra",
)  # fmt: skip


def label_problem(name: str) -> str | None:
    """Why ``name`` is not a valid DNS label, or None when it is."""
    if not name:
        return "a name cannot be empty"
    if len(name) > 63:
        return f"{name!r} is longer than 63 characters"
    if not _LABEL.fullmatch(name):
        return (
            f"{name!r} is not a valid name: use lowercase letters, digits and '-', "
            "not starting or ending with '-'"
        )
    return None


def is_valid_label(name: str) -> bool:
    """True when ``name`` can be a tunnel's public name."""
    return label_problem(name) is None


def random_name(suffix_digits: int = 0) -> str:
    """A readable random name such as ``amazing-coder`` (``amazing-coder-42`` with digits)."""
    name = f"{secrets.choice(ADJECTIVES)}-{secrets.choice(NOUNS)}"
    if suffix_digits:
        name += "-" + str(secrets.randbelow(10**suffix_digits))
    return name


def tunnel_from_host(host: str, domain: str) -> str | None:
    """The tunnel name selected by a Host header ``NAME.DOMAIN[:PORT]``, or None."""
    host = host.strip().lower()
    if host.startswith("["):  # an IPv6 literal never names a tunnel
        return None
    hostname, colon, port = host.rpartition(":")
    if not colon:
        hostname = host
    elif port and not port.isdigit():
        # "pay.DOMAIN:1@evil.example" is no NAME.DOMAIN[:PORT]: a URL made from it names
        # evil.example (a replay through the public URL would go there).
        return None
    hostname = hostname.rstrip(".")
    suffix = "." + domain.lower()
    if not hostname.endswith(suffix):
        return None
    name = hostname[: -len(suffix)]
    return name if is_valid_label(name) else None
