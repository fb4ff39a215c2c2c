"""One relay name, several addresses: which addresses become links (relay/agent/addresses.py),
and the dial helper connecting to an address while TLS checks the name (relay/transport/dial.py,
a real TLS server on 127.0.0.2)."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import trustme

from relay.agent import AgentSettings
from relay.agent.addresses import MAX_ADDRESSES, expand, pick_addresses
from relay.agent.links import LinkedAgent, agent_for
from relay.transport.dial import dial


def test_addresses_are_unique_of_one_family_capped_and_junk_is_skipped():
    assert pick_addresses(["10.0.0.1", "10.0.0.2", "10.0.0.1"]) == ["10.0.0.1", "10.0.0.2"]
    assert pick_addresses(["127.0.0.1", "::1"]) == ["127.0.0.1"]  # localhost: one machine
    assert pick_addresses(["::1", "127.0.0.1"]) == ["::1"]
    many = [f"10.0.0.{n}" for n in range(1, 50)]
    assert pick_addresses(many) == many[:MAX_ADDRESSES] and MAX_ADDRESSES == 4
    hostile = ["", "not an address", "999.1.1.1", "10.0.0.1%eth0\n", "x" * 10_000, "10.0.0.9"]
    assert pick_addresses(hostile) == ["10.0.0.9"]
    assert pick_addresses([]) == []


def settings(relay: str, **changes: object) -> AgentSettings:
    made = AgentSettings(local_port=3000, relay=relay)
    for key, value in changes.items():
        setattr(made, key, value)
    return made


async def test_a_name_with_several_addresses_expands_to_a_link_per_address():
    asked: list[tuple[str, int]] = []

    async def two(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["192.0.2.1", "192.0.2.2"]

    more = "wss://b.example"  # default port 443; resolves to two as well
    got = await expand(settings("ws://a.example:7000", more_relays=(more,), resolver=two))
    assert asked == [("a.example", 7000), ("b.example", 443)]
    assert got.addresses == (
        ("ws://a.example:7000", "192.0.2.1"),
        ("ws://a.example:7000", "192.0.2.2"),
        (more, "192.0.2.1"),
        (more, "192.0.2.2"),
    )
    agent = agent_for(got)
    assert isinstance(agent, LinkedAgent)
    assert [link.label for link in agent.links][:2] == [
        "ws://a.example:7000 (192.0.2.1)",
        "ws://a.example:7000 (192.0.2.2)",
    ]
    assert all(
        not link.settings.addresses and not link.settings.more_relays for link in agent.links
    )


@pytest.mark.parametrize(
    "answer",
    [["192.0.2.1"], [], OSError("no such name"), TimeoutError(), ["bogus", "also bogus"]],
    ids=["one", "none", "oserror", "timeout", "junk"],
)
async def test_one_address_or_a_failed_lookup_leaves_one_plain_link(answer):
    async def resolver(host: str, port: int) -> list[str]:
        if isinstance(answer, BaseException):
            raise answer
        return answer

    got = await expand(settings("ws://relay.example:7000", resolver=resolver))
    assert got.addresses == ()
    assert not isinstance(agent_for(got), LinkedAgent)  # resolved again when it dials


async def test_addresses_and_tcp_tunnels_are_not_expanded():
    async def never(host: str, port: int) -> list[str]:
        raise AssertionError(f"{host} was looked up")

    assert (await expand(settings("ws://127.0.0.1:7000", resolver=never))).addresses == ()
    assert (await expand(settings("ws://[::1]:7000", resolver=never))).addresses == ()
    tcp = settings("ws://relay.example:7000", resolver=never, protocol="tcp")
    assert (await expand(tcp)).addresses == ()


async def test_a_slow_resolver_is_given_up_on(monkeypatch):
    monkeypatch.setattr("relay.agent.addresses.RESOLVE_TIMEOUT", 0.1)

    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(5)
        return ["192.0.2.1", "192.0.2.2"]

    assert (await expand(settings("ws://relay.example:7000", resolver=slow))).addresses == ()


async def test_the_system_resolver_expands_nothing_for_localhost():
    # localhost is 127.0.0.1 and/or ::1: one family is kept, so at most one address, one link.
    assert (await expand(settings("ws://localhost:7000"))).addresses == ()


async def tls_server(names: tuple[str, ...], ca: trustme.CA) -> tuple[asyncio.Server, list[str]]:
    """A TLS server on 127.0.0.2 whose certificate names ``names``; records the SNI it sees."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    seen: list[str] = []

    def note_name(sock: object, name: str | None, ctx: object) -> None:
        seen.append(name or "")

    context.sni_callback = note_name  # type: ignore[assignment]

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.2", 0, ssl=context)
    return server, seen


async def test_dialling_an_address_still_checks_the_certificate_against_the_name():
    ca = trustme.CA()
    client = ssl.create_default_context()
    ca.configure_trust(client)
    server, seen = await tls_server(("relay.test",), ca)
    port = server.sockets[0].getsockname()[1]
    try:
        reader = asyncio.StreamReader()
        await dial(
            lambda: asyncio.StreamReaderProtocol(reader), "relay.test", port, client, "127.0.0.2"
        )
        assert await reader.read() == b"hello" and seen == ["relay.test"]

        # The same address under a name the certificate does not hold: refused, not trusted.
        with pytest.raises(ssl.SSLCertVerificationError, match=r"relay\.other"):
            await dial(asyncio.Protocol, "relay.other", port, client, "127.0.0.2")
    finally:
        server.close()
        await server.wait_closed()
