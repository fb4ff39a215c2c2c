"""Tunnel names: DNS label rules, readable random names, and picking the name out of a Host."""

from __future__ import annotations

import re

import pytest

from relay.http.names import (
    ADJECTIVES,
    NOUNS,
    is_valid_label,
    label_problem,
    random_name,
    tunnel_from_host,
)


@pytest.mark.parametrize(
    "name", ["a", "z9", "app", "my-app", "a-b-c", "0day", "123", "x" * 63, "xn--bcher-kva"]
)
def test_valid_labels(name):
    assert label_problem(name) is None
    assert is_valid_label(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "-app",
        "app-",
        "-",
        "App",
        "APP",
        "my_app",
        "my.app",
        "my app",
        "app!",
        "é",
        "x" * 64,
        "app\n",
    ],
)
def test_invalid_labels_say_why(name):
    problem = label_problem(name)
    assert problem
    assert not is_valid_label(name)


def test_problem_messages_are_specific():
    assert "empty" in label_problem("")
    assert "63" in label_problem("x" * 64)
    assert "lowercase" in label_problem("Bad_Name")


def test_random_names_are_valid_adjective_noun():
    seen = set()
    for _ in range(300):
        name = random_name()
        assert re.fullmatch(r"[a-z]+-[a-z]+", name), name
        adjective, noun = name.split("-")
        assert adjective in ADJECTIVES and noun in NOUNS
        assert is_valid_label(name)
        seen.add(name)
    assert len(seen) > 100  # random, not a fixed few


def test_random_names_with_digits():
    for _ in range(100):
        name = random_name(suffix_digits=3)
        assert re.fullmatch(r"[a-z]+-[a-z]+-\d{1,3}", name), name
        assert is_valid_label(name)


def test_every_word_pair_is_a_valid_label():
    for adjective in ADJECTIVES:
        for noun in NOUNS:
            assert is_valid_label(f"{adjective}-{noun}")


@pytest.mark.parametrize(
    ("host", "domain", "name"),
    [
        ("app.localhost", "localhost", "app"),
        ("app.localhost:8080", "localhost", "app"),
        ("APP.LocalHost:8080", "localhost", "app"),
        ("app.localhost.", "localhost", "app"),
        ("app.localhost.:8080", "localhost", "app"),
        ("  app.localhost  ", "localhost", "app"),
        ("amazing-coder.tunnels.example.com", "tunnels.example.com", "amazing-coder"),
        ("amazing-coder.tunnels.example.com:443", "Tunnels.Example.COM", "amazing-coder"),
        # not ours
        ("app.example.com", "localhost", None),
        ("app.localhost.evil.com", "localhost", None),
        ("applocalhost", "localhost", None),
        ("localhost", "localhost", None),
        ("localhost:8080", "localhost", None),
        (".localhost", "localhost", None),
        ("", "localhost", None),
        # a name is one label
        ("sub.app.localhost", "localhost", None),
        ("sub.app.localhost:8080", "localhost", None),
        ("bad_name.localhost", "localhost", None),
        ("-app.localhost", "localhost", None),
        # addresses never name tunnels
        ("127.0.0.1:8080", "localhost", None),
        ("[::1]:8080", "localhost", None),
        ("[::1]", "localhost", None),
        ("[app.localhost]:80", "localhost", None),
        # a port is digits: userinfo or anything else after the colon names another host
        ("app.localhost:1@evil.example", "localhost", None),
        ("app.localhost:80x", "localhost", None),
        ("app.localhost:", "localhost", "app"),  # an empty port is allowed (RFC 3986)
    ],
)
def test_tunnel_from_host(host, domain, name):
    assert tunnel_from_host(host, domain) == name
