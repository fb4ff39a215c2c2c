"""What the per-address limits count a client as (sans-I/O: addresses in, keys out)."""

from __future__ import annotations

import pytest

from relay.server.access import client_key


@pytest.mark.parametrize(
    ("address", "prefix", "key"),
    [
        ("203.0.113.7", 64, "203.0.113.7"),
        ("2001:db8:1:2::a", 64, "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:ffff:ffff:ffff:ffff", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2::a", 48, "2001:db8:1::/48"),
        ("2001:db8:1:2::a", 128, "2001:db8:1:2::a"),
        ("::ffff:198.51.100.9", 64, "198.51.100.9"),  # an IPv4 client on a dual-stack socket
        ("::1", 64, "::/64"),
        ("fe80::1%eth0", 64, "fe80::/64"),  # a scope id does not make another client
        ("not:an:address", 64, "not:an:address"),
        ("", 64, ""),
    ],
)
def test_the_per_address_limits_count_ipv6_by_network(address, prefix, key):
    assert client_key(address, prefix) == key
