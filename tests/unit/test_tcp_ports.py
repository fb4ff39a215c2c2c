"""The TCP port allocator (sans-I/O): ranges, requested ports, reservations, limits, leases."""

from __future__ import annotations

import pytest

from relay.server.access import TokenEntry
from relay.server.tcp_ports import (
    PortAllocator,
    PortRange,
    PortRefusal,
    parse_port_range,
    requested_port,
)

RANGE = PortRange(20000, 20009)


def test_parse_port_range():
    assert parse_port_range("20000-20999") == PortRange(20000, 20999)
    assert parse_port_range(" 5432 ") == PortRange(5432, 5432)
    assert len(parse_port_range("20000-20999")) == 1000
    assert str(PortRange(1, 2)) == "1-2"


@pytest.mark.parametrize(
    "text", ["", "-", "a-b", "20000-", "-20000", "0-10", "10-5", "1-65536", "1--2", "١٢-٣٤", "1e3"]
)
def test_parse_port_range_refuses_what_is_not_a_range(text):
    with pytest.raises(ValueError, match="port"):
        parse_port_range(text)


@pytest.mark.parametrize("value", [0, -1, 65536, 70000, "5432", True, False, 1.5, [1], {}, 2**64])
def test_requested_port_refuses_what_is_not_a_port(value):
    refusal = requested_port(value)
    assert isinstance(refusal, PortRefusal)
    assert refusal.code == "bad_port"
    assert "1 to 65535" in refusal.message


def test_requested_port_accepts_ports_and_none():
    assert requested_port(None) is None
    assert requested_port(1) == 1
    assert requested_port(65535) == 65535


def test_no_range_means_no_tcp():
    refusal = PortAllocator(None).choose("a", None, "")
    assert isinstance(refusal, PortRefusal)
    assert refusal.code == "tcp_disabled"
    assert "--tcp-ports" in refusal.message


def test_random_ports_are_in_the_range_and_free():
    allocator = PortAllocator(RANGE)
    for i in range(10):
        choice = allocator.choose(f"t{i}", None, "")
        assert isinstance(choice, list) and choice
        assert all(port in RANGE for port in choice)
        assert choice[0] not in allocator.owner
        allocator.assign(f"t{i}", choice[0], "")
    assert sorted(allocator.owner) == list(range(20000, 20010))
    full = allocator.choose("t10", None, "")
    assert isinstance(full, PortRefusal) and full.code == "no_free_port"
    allocator.release("t3")
    assert isinstance(allocator.choose("t10", None, ""), list)


def test_a_requested_port_outside_the_range_is_refused_and_says_the_range():
    refusal = PortAllocator(RANGE).choose("a", 20010, "")
    assert isinstance(refusal, PortRefusal)
    assert refusal.code == "port_out_of_range"
    assert "20000-20009" in refusal.message


def test_a_taken_port_is_refused_to_another_name_and_kept_for_its_own():
    allocator = PortAllocator(RANGE)
    allocator.assign("first", 20005, "")
    taken = allocator.choose("second", 20005, "")
    assert isinstance(taken, PortRefusal) and taken.code == "port_taken"
    # The same name (a reconnect with its resume token) finds its port, asked for or not.
    assert allocator.choose("first", None, "") == [20005]
    assert allocator.choose("first", 20005, "") == [20005]


def test_moving_to_another_port_frees_the_old_one():
    allocator = PortAllocator(RANGE)
    allocator.assign("a", 20001, "")
    allocator.assign("a", 20002, "")
    assert allocator.port_of("a") == 20002
    assert 20001 not in allocator.owner
    assert allocator.release("a") == 20002
    assert allocator.release("a") is None
    assert not allocator.owner and not allocator.label


def test_reserved_ports_go_only_to_their_token():
    tokens = [TokenEntry("alice", "sha256:x", ports=(20003,)), TokenEntry("bob", "sha256:y")]
    allocator = PortAllocator(RANGE)
    refused = allocator.choose("b", 20003, "bob", tokens)
    assert isinstance(refused, PortRefusal) and refused.code == "port_reserved"
    assert allocator.choose("a", 20003, "alice", tokens) == [20003]
    for _ in range(30):  # never handed out at random, not even to its own token
        choice = allocator.choose("b", None, "bob", tokens)
        assert isinstance(choice, list) and 20003 not in choice
    revoked = [TokenEntry("alice", "sha256:x", ports=(20003,), revoked=True)]
    assert allocator.choose("b", 20003, "bob", revoked) == [20003]


def test_ports_per_token_are_limited_but_a_reconnect_is_not_counted_twice():
    allocator = PortAllocator(RANGE)
    allocator.assign("one", 20001, "alice")
    allocator.assign("two", 20002, "alice")
    refused = allocator.choose("three", None, "alice", limit=2)
    assert isinstance(refused, PortRefusal) and refused.code == "too_many_ports"
    assert "'alice'" in refused.message
    assert allocator.choose("two", None, "alice", limit=2) == [20002]
    assert isinstance(allocator.choose("three", None, "bob", limit=2), list)
