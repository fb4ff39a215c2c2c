"""Answering an agent's HELLO: protocol version, token, name (reserved, taken, held), options."""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING

from relay.http.names import label_problem, random_name
from relay.server.access import TokenBucket, check_token, reserved_by, rules_from_options
from relay.wire import codec as p

if TYPE_CHECKING:
    from relay.server import Relay
    from relay.server.agent_session import AgentSession


def admit(relay: Relay, session: AgentSession, hello: p.Hello) -> None:
    """Give the agent its tunnel, or refuse with a code and a message that says what to do."""
    s = relay.settings
    if hello.version != p.VERSION:
        session.refuse(
            "version",
            f"this relay speaks protocol {p.VERSION}, the agent {hello.version}: "
            "upgrade the older side",
        )
        return
    if not 1024 <= hello.window <= p.MAX_WINDOW:
        session.refuse("bad_window", f"window {hello.window} out of range")
        return
    verdict = check_token(hello.token, s.tokens)
    if verdict.code:
        session.refuse(verdict.code, verdict.message)
        return
    entry = verdict.entry
    label = entry.label if entry else ""
    if entry and entry.max_tunnels:
        mine = sum(1 for t in relay.tunnels.values() if t.token_label == label)
        if mine >= entry.max_tunnels:
            session.refuse(
                "too_many_tunnels",
                f"the token '{label}' may have {entry.max_tunnels} tunnel(s) open at once; "
                "stop one first",
            )
            return
    try:
        rules = rules_from_options(hello.options)
    except ValueError as exc:
        session.refuse("bad_options", str(exc))
        return
    takeover = hello.options.get("takeover") is True
    name = hello.name or _free_random_name(relay)
    problem = label_problem(name)
    if problem:
        session.refuse("invalid_name", problem)
        return
    owner = reserved_by(name, s.tokens)
    if owner is not None and owner.label != label:
        session.refuse(
            "name_reserved",
            f"the name '{name}' is reserved on this relay for another token; "
            "choose another --subdomain",
        )
        return
    live = relay.tunnels.get(name)
    lease = relay.leases.get(name)
    own = bool(label) and takeover  # the same token, asking explicitly
    if live is not None:
        same_agent = bool(hello.resume) and hello.resume == live.resume
        if not (same_agent or (own and live.token_label == label)):
            hint = " (or --takeover with the same token)" if label else ""
            session.refuse(
                "name_taken",
                f"the name '{name}' is in use by another agent; choose another --subdomain{hint}",
            )
            return
        relay.tunnels.pop(name, None)
        if same_agent:  # the same agent is back before its old connection was declared dead
            live.fail("replaced by the same agent, reconnected")
        else:  # taken over: tell the old agent, so it stops instead of taking the name back
            live.refuse("replaced", f"another agent with the same token took over '{name}'")
    elif lease is not None:
        if hello.resume != lease.resume and not (own and lease.token_label == label):
            wait = max(0, int(lease.expires - time.monotonic()))
            session.refuse(
                "name_held",
                f"the name '{name}' is held for its previous agent for {wait} more seconds; "
                "choose another --subdomain",
            )
            return
        lease.timer.cancel()
        del relay.leases[name]
    # A free name keeps the agent's own resume token: after a relay restart it still names it.
    resume = hello.resume or secrets.token_urlsafe(24)
    session.token_label = label
    session.rules = rules
    if s.rate:
        session.bucket = TokenBucket(s.rate, s.burst or s.rate)
    relay.tunnels[name] = session
    session.welcome(name, resume, hello)
    relay.log_event("tunnel_online", name=name, peer=session.peer, token=label or None)


def _free_random_name(relay: Relay) -> str:
    tokens = relay.settings.tokens
    for attempt in range(50):
        name = random_name(suffix_digits=0 if attempt < 20 else 3)
        free = name not in relay.tunnels and name not in relay.leases
        if free and reserved_by(name, tokens) is None:
            return name
    return f"tunnel-{secrets.token_hex(4)}"
