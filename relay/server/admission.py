"""Answering an agent's HELLO: protocol version, token, name (reserved, taken, held), options."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from relay.cluster.records import policy_of
from relay.cluster.registry import Claim
from relay.http.names import label_problem, random_name
from relay.server.access import (
    AccessRules,
    TokenEntry,
    check_token,
    reserved_by,
    rules_from_options,
)
from relay.server.rate_share import new_bucket
from relay.server.tcp_ports import PortRefusal, requested_port
from relay.wire import codec as p

if TYPE_CHECKING:
    from relay.server import Relay
    from relay.server.agent_session import AgentSession

RESUME_BYTES = 16  # 128 random bits in each resume token


@dataclass(frozen=True)
class _Ask:
    """A HELLO that passed every check but the name's holder: what admission goes on with."""

    name: str
    label: str
    entry: TokenEntry | None
    rules: AccessRules
    tcp: int | bool | None  # False: HTTP; else the TCP port asked for (None: any)
    own: bool  # the agent asked to take over a name of its own token
    chosen: bool  # the agent chose the name (else it is a random one, picked here)
    links: bool = False  # the agent holds the name through other nodes too (HELLO "links")


def admit(relay: Relay, session: AgentSession, hello: p.Hello) -> None:
    """Give the agent its tunnel, or refuse with a code and a message that says what to do.

    On one relay the decision is made now, from the relay's own dicts. In a cluster the shared
    registry must also agree (an await), so the rest runs as a task.
    """
    ask = _checked(relay, session, hello)
    if ask is None:
        return
    if relay.registry.shared:
        relay.background(_admit_shared(relay, session, hello, ask))
        return
    name, label = ask.name, ask.label
    live = relay.tunnels.get(name)
    lease = relay.leases.get(name)
    # Whether the agent presented the resume token this relay issued to its token.
    resumed = same_agent = False
    if live is not None:
        same_agent = resumed = _resumes(hello.resume, live.resume, live.token_label, label)
        if same_agent and ask.links:
            _refuse_second_link(session, name)
            return
        if not (same_agent or (ask.own and live.token_label == label)):
            _refuse_taken(session, name, label)
            return
    elif lease is not None:
        resumed = _resumes(hello.resume, lease.resume, lease.token_label, label)
        if not (resumed or (ask.own and lease.token_label == label)):
            wait = max(0, int(lease.expires - time.monotonic()))
            session.refuse(
                "name_held",
                f"the name '{name}' is held for its previous agent for {wait} more seconds; "
                "choose another --subdomain",
            )
            return
    # Resume tokens are minted here, never chosen by the agent: one the relay did not issue (say,
    # from before a restart) is no resume, and a free name gets a fresh token. An honoured token
    # is issued again unchanged, not rotated: the agent only learns a new one from the WELCOME,
    # and one that gives up on the handshake just as the WELCOME is sent (its connect timeout, a
    # cut connection) retries with the token it had. Rotated, the relay would hold the name for a
    # token that agent never saw, and refuse it the name (name_held, name_taken) for good.
    resume = hello.resume if resumed else secrets.token_urlsafe(RESUME_BYTES)
    _hand_over(relay, session, hello, ask, resume, same_agent)


async def _admit_shared(relay: Relay, session: AgentSession, hello: p.Hello, ask: _Ask) -> None:
    """Admission in a cluster: this node's live tunnel first, then the shared registry's word
    (which holds leases and names of every node; this node's own leases only time its ports)."""
    for _attempt in range(3):
        live = relay.tunnels.get(ask.name)
        resumes = live is not None and _resumes(
            hello.resume, live.resume, live.token_label, ask.label
        )
        if resumes and ask.links:
            _refuse_second_link(session, ask.name)
            return
        if live is not None and not (resumes or (ask.own and live.token_label == ask.label)):
            _refuse_taken(session, ask.name, ask.label)
            return
        fresh = secrets.token_urlsafe(RESUME_BYTES)
        claim = await relay.registry.claim(
            ask.name,
            ask.label,
            hello.resume,
            fresh,
            ask.own,
            policy_of(hello.options),
            join=ask.links,
            limit=ask.entry.max_tunnels if ask.entry else 0,
        )
        if claim.code == "cluster_unavailable" and _back_here(relay, hello, ask):
            # Redis is away, but this node holds the name for this very agent (a blip of its
            # connection): it keeps its tunnel, as tunnels already open keep theirs. The next
            # renewal registers it again once Redis is back.
            claim = Claim("resumed")
        if claim.granted or ask.chosen or claim.code in ("cluster_unavailable", "too_many_tunnels"):
            break
        ask = replace(ask, name=_free_random_name(relay))  # a random name held on another node
    resume = hello.resume if claim.how in ("resumed", "joined") else fresh
    if session.closed.done():  # the agent left while the registry answered
        if claim.granted:
            relay.registry.hold(ask.name, ask.label, resume)
        return
    if not claim.granted:
        session.refuse(claim.code, claim.message)
        return
    # The registry serialises claims, so another agent here cannot have won the name meanwhile
    # without a matching resume token or takeover; the replaced session (if any) is told.
    live = relay.tunnels.get(ask.name)
    same_agent = live is not None and claim.how == "resumed"
    if not _hand_over(relay, session, hello, ask, resume, same_agent):
        relay.registry.release(ask.name)


def _back_here(relay: Relay, hello: p.Hello, ask: _Ask) -> bool:
    """Whether the agent presents the resume token of a tunnel this node holds for it."""
    held = relay.tunnels.get(ask.name) or relay.leases.get(ask.name)
    return held is not None and _resumes(hello.resume, held.resume, held.token_label, ask.label)


def _checked(relay: Relay, session: AgentSession, hello: p.Hello) -> _Ask | None:
    """Every check that does not depend on who holds the name; None once refused."""
    s = relay.settings
    if hello.version != p.VERSION:
        session.refuse(
            "version",
            f"this relay speaks protocol {p.VERSION}, the agent {hello.version}: "
            "upgrade the older side",
        )
        return None
    if not 1024 <= hello.window <= p.MAX_WINDOW:
        session.refuse("bad_window", f"window {hello.window} out of range")
        return None
    verdict = check_token(hello.token, s.tokens)
    if verdict.code:
        session.refuse(verdict.code, verdict.message)
        return None
    entry = verdict.entry
    label = entry.label if entry else ""
    if entry and entry.max_tunnels:
        # The tunnel this HELLO would replace (a reconnect, a takeover) is not counted: an agent
        # at its limit must be able to come back before its old connection is declared dead.
        mine = sum(
            1 for n, t in relay.tunnels.items() if t.token_label == label and n != hello.name
        )
        if mine >= entry.max_tunnels:
            session.refuse(
                "too_many_tunnels",
                f"the token '{label}' may have {entry.max_tunnels} tunnel(s) open at once; "
                "stop one first",
            )
            return None
    try:
        rules = rules_from_options(hello.options)
    except ValueError as exc:
        session.refuse("bad_options", str(exc))
        return None
    tcp = _tcp_request(hello.options)
    if isinstance(tcp, PortRefusal):
        session.refuse(tcp.code, tcp.message)
        return None
    takeover = hello.options.get("takeover") is True
    links = hello.options.get("links", False)
    if not isinstance(links, bool) or (links and tcp is not False):
        why = "must be true or false" if not isinstance(links, bool) else "is for HTTP tunnels"
        session.refuse("bad_options", f"links (--relay given more than once) {why}")
        return None
    name = hello.name or _free_random_name(relay)
    problem = label_problem(name)
    if problem:
        session.refuse("invalid_name", problem)
        return None
    owner = reserved_by(name, s.tokens)
    if owner is not None and owner.label != label:
        session.refuse(
            "name_reserved",
            f"the name '{name}' is reserved on this relay for another token; "
            "choose another --subdomain",
        )
        return None
    own = bool(label) and takeover  # the same token, asking explicitly
    return _Ask(name, label, entry, rules, tcp, own, bool(hello.name), links)


def _refuse_taken(session: AgentSession, name: str, label: str) -> None:
    hint = " (or --takeover with the same token)" if label else ""
    session.refuse(
        "name_taken",
        f"the name '{name}' is in use by another agent; choose another --subdomain{hint}",
    )


def _refuse_second_link(session: AgentSession, name: str) -> None:
    """A second link of one agent reached the node that carries its first: one node holds one
    link per tunnel (a relay that is no cluster node has one link; --relay URLs behind one load
    balancer may land on one node). The agent tries this link again later."""
    session.refuse(
        "link_here",
        f"this relay already carries a link of the tunnel '{name}' (it is not a cluster node, "
        "or two --relay URLs reach the same node); this link will try again",
    )


def _hand_over(
    relay: Relay, session: AgentSession, hello: p.Hello, ask: _Ask, resume: str, same_agent: bool
) -> bool:
    """The name is this agent's: now its port (kept from before on a resume), then the
    handover from the session or lease that had it. False if the port is refused."""
    name = ask.name
    if ask.tcp is not False:
        port = relay.tcp.open(name, ask.tcp, ask.entry)
        if isinstance(port, PortRefusal):
            session.refuse(port.code, port.message)
            return False
        session.protocol = "tcp"
    elif relay.tcp.allocator.port_of(name) is not None:
        relay.tcp.release(name)  # the name was a TCP tunnel's; as an HTTP tunnel it needs none
    live = relay.tunnels.pop(name, None)
    lease = relay.leases.pop(name, None)
    if live is not None:
        if same_agent:  # the same agent is back before its old connection was declared dead
            live.fail("replaced by the same agent, reconnected")
        else:  # taken over: tell the old agent, so it stops instead of taking the name back
            live.refuse("replaced", f"another agent with the same token took over '{name}'")
    if lease is not None:
        lease.timer.cancel()
    session.token_label = ask.label
    session.rules = ask.rules
    session.policy = policy_of(hello.options)
    session.links = ask.links
    session.bucket = new_bucket(relay)  # in a cluster, this node's share of the rate
    relay.tunnels[name] = session
    session.welcome(name, resume, hello)
    relay.log_event("tunnel_online", name=name, peer=session.peer, token=ask.label or None)
    return True


def release(relay: Relay, session: AgentSession, reason: str) -> None:
    """The agent stopped on purpose (its GOAWAY): free its name now, with no lease.

    Visitors get the plain "no tunnel" page at once, and anyone may take the name. Only a lost
    connection (no GOAWAY) holds the name for the agent's resume token.
    """
    name = session.name
    if name is None or relay.tunnels.get(name) is not session:
        return  # replaced or taken over already: the name is not this session's to free
    del relay.tunnels[name]
    relay.tcp.release(name)  # a TCP tunnel's port goes with its name
    relay.registry.release(name)
    relay.log_event("tunnel_closed", name=name, peer=session.peer, reason=reason[:120])


def _resumes(presented: str, issued: str, issued_label: str, label: str) -> bool:
    """Whether ``presented`` is the resume token issued to a tunnel of the agent token ``label``
    (on a relay without tokens every label is ""). Compared in constant time, as bytes: an
    agent's string need not be ASCII, which ``compare_digest`` wants of a ``str``."""
    if not presented or not issued:
        return False
    same = hmac.compare_digest(presented.encode(), issued.encode())
    return same and issued_label == label


def _tcp_request(options: dict[str, object]) -> int | bool | PortRefusal | None:
    """HELLO's protocol options: False for HTTP, the port asked for (None: any) for TCP."""
    protocol = options.get("protocol", "http")
    if protocol == "http":
        if "remote_port" in options:
            return PortRefusal("bad_options", "remote_port applies only to protocol 'tcp'")
        return False
    if protocol != "tcp":
        shown = repr(protocol)[:40]
        return PortRefusal("bad_options", f"protocol must be 'http' or 'tcp', not {shown}")
    if "basic_auth" in options:
        return PortRefusal(
            "bad_options",
            "basic_auth does not apply to a TCP tunnel (the relay sees no HTTP in it); "
            "limit who may connect with allow / deny networks instead",
        )
    return requested_port(options.get("remote_port"))


def _free_random_name(relay: Relay) -> str:
    tokens = relay.settings.tokens
    for attempt in range(50):
        name = random_name(suffix_digits=0 if attempt < 20 else 3)
        free = name not in relay.tunnels and name not in relay.leases
        if free and reserved_by(name, tokens) is None:
            return name
    return f"tunnel-{secrets.token_hex(4)}"
