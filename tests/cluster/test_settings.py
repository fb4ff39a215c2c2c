"""Cluster settings from flags and the config file, hostile values included, and Redis answers
a node does not expect: each is refused with a message that says what to fix."""

from __future__ import annotations

import pytest

from relay.cluster import parse_cluster
from relay.cluster.directory import _entry
from relay.cluster.records import claim_from_reply, lost_names, resume_digest
from relay.cluster.settings import redact_url
from relay.server.config import ConfigError, load_config
from tests.cluster.nodes import SECRET
from tests.support.cli import run_molehill

GOOD = ("redis://127.0.0.1:6379/0", "node1", "ws://10.0.0.5:7000", SECRET)


def test_good_settings_pass_and_keep_secrets_out_of_repr():
    settings = parse_cluster("redis://:hunter2@127.0.0.1:6379/3", *GOOD[1:])
    assert settings.node_id == "node1" and settings.redis_url.endswith("/3")
    assert SECRET not in repr(settings) and "hunter2" not in repr(settings)
    assert redact_url("rediss://u:pw@h:1/0") == "rediss://u:***@h:1/0"


@pytest.mark.parametrize(
    ("index", "value", "says"),
    [
        (0, "", "redis URL: missing"),
        (0, "http://127.0.0.1:6379", "the scheme must be redis://"),
        (0, "redis://", "names no host"),
        (0, "redis://h:99999/0", "is not a URL"),
        (0, "redis://h:0/0", "port 0"),
        (0, "redis://h:6379/16", "/0 to /15"),
        (0, "redis://h:6379/db", "/0 to /15"),
        (0, "redis://h:6379/0?ssl=1", "options after"),
        (0, "redis://:pw@h:6379/x", "***"),  # a bad URL's message hides its password
        (1, "", "node id: missing"),
        (1, "Node_1", "not a valid name"),
        (1, "n" * 64, "longer than 63"),
        (1, "\x00", "not a valid name"),
        (2, "", "node URL: missing"),
        (2, "http://h:1", "expected ws://HOST:PORT"),
        (2, "ws://h:1/path", "only the scheme, host and port"),
        (2, "ws://[::1", "is not a URL"),
        (3, "", "cluster secret: missing"),
        (3, "short", "too short"),
    ],
)
def test_bad_settings_say_what_to_fix(index, value, says):
    values = list(GOOD)
    values[index] = value
    with pytest.raises(ValueError) as info:
        parse_cluster(*values)
    assert says in str(info.value)
    assert "pw@" not in str(info.value)


def test_the_config_file_cluster_table(tmp_path):
    path = tmp_path / "relay.toml"
    path.write_text(
        '[cluster]\nredis = "redis://127.0.0.1:6379/0"\nnode_id = "a"\n'
        f'node_url = "ws://127.0.0.1:7000"\nsecret = "{SECRET}"\n'
    )
    assert load_config(path).cluster == parse_cluster(
        "redis://127.0.0.1:6379/0", "a", "ws://127.0.0.1:7000", SECRET
    )
    path.write_text('[cluster]\nredis = "redis://127.0.0.1:6379/0"\nnodes = 3\n')
    with pytest.raises(ConfigError, match=r"\[cluster\]: unknown key 'nodes'"):
        load_config(path)
    path.write_text('[cluster]\nredis = "redis://127.0.0.1:6379/0"\n')
    with pytest.raises(ConfigError, match=r"\[cluster\]: node id: missing"):
        load_config(path)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--node-id", "a"], "--node-id needs --cluster"),
        (["--cluster", "redis://127.0.0.1:6379/0"], "node id: missing"),
        (
            ["--cluster", "redis://127.0.0.1:6379/0", "--node-id", "a", "--node-url", "ws://h:1"],
            "cluster secret: missing",
        ),
        (["--cluster", "mysql://h/0", "--node-id", "a"], "the scheme must be redis://"),
    ],
)
async def test_relay_command_exits_2_on_bad_cluster_flags(args, says):
    done = await run_molehill("relay", "--http", "127.0.0.1:0", "--agents", "127.0.0.1:0", *args)
    assert done.code == 2, done.err
    assert says in done.err and "Traceback" not in done.err


@pytest.mark.parametrize(
    "reply",
    [None, b"fresh", [], [b"fresh"], [b"granted", b""], [1, 2, 3], "held", [b"\xff\xfe", b"x"]],
)
def test_an_unexpected_redis_answer_refuses_rather_than_grants(reply):
    claim = claim_from_reply("web", reply)
    assert not claim.granted and claim.code == "cluster_unavailable"
    assert "unexpected answer from Redis" in claim.message


def test_redis_answers_read_as_claims():
    assert claim_from_reply("web", [b"resumed", b"d"]).how == "resumed"
    taken = claim_from_reply("web", [b"taken", b"node2"])
    assert taken.code == "name_taken" and "node2" in taken.message
    held = claim_from_reply("web", [b"held", b"12500"])
    assert held.code == "name_held" and "12 more seconds" in held.message
    assert claim_from_reply("web", [b"held", b"junk"]).code == "name_held"
    assert lost_names([b"molehill:name:a", b"other:key", 7]) == ["a"]
    assert lost_names(b"molehill:name:a") == []
    assert resume_digest("") == "" and len(resume_digest("\udcff")) == 64


def test_joined_and_too_many_read_as_claims():
    assert claim_from_reply("web", [b"joined", b"d"]).how == "joined"
    many = claim_from_reply("web", [b"too_many", b"2"])
    assert many.code == "too_many_tunnels" and "2 tunnel(s) open across the relay cluster" in (
        many.message
    )
    long = claim_from_reply("web", [b"too_many", b"9" * 500])
    assert long.code == "too_many_tunnels" and len(long.message) < 200


@pytest.mark.parametrize(
    ("fields", "nodes"),
    [
        ({b"node": b"a", b"nodes": b"a b"}, ("a", "b")),
        ({b"node": b"b", b"nodes": b"a b"}, ("b", "a")),  # the first holder first
        ({b"node": b"a"}, ("a",)),  # a record of an older node
        ({b"node": b"a", b"nodes": b"b c"}, ("a",)),  # "nodes" not listing "node": written by hand
        ({b"node": b"a", b"nodes": b"a a  b\tb"}, ("a", "b")),
        ({b"node": b"a", b"nodes": "a \xff".encode("latin-1")}, ("a", "\ufffd")),
    ],
)
def test_a_name_s_holders_as_the_directory_reads_them(fields, nodes):
    entry = _entry({**fields, b"state": b"live", b"policy": b"{}"})
    assert entry is not None and entry[0] == nodes
    assert _entry({b"nodes": b"a b"}) is None  # no holder: not a name this node can route
