"""The words for a local app's failure, from the errors the agent meets, including the ones
asyncio folds together when a host name has several addresses."""

from __future__ import annotations

import errno
import socket

from relay.agent.failures import dial_failure, lost_failure

LOCAL = "localhost:3000"


def test_refused_on_every_address_of_a_name_is_refused():
    both = OSError(
        "Multiple exceptions: [Errno 111] Connect call failed ('::1', 3000, 0, 0), "
        "[Errno 111] Connect call failed ('127.0.0.1', 3000)"
    )
    assert dial_failure(both, LOCAL, 10) == (
        "refused",
        "local app refused the connection (localhost:3000)",
    )


def test_mixed_failures_on_several_addresses_keep_the_text():
    mixed = OSError(
        "Multiple exceptions: [Errno 111] Connect call failed ('::1', 3000, 0, 0), "
        "[Errno 113] Connect call failed ('10.0.0.9', 3000)"
    )
    kind, sentence = dial_failure(mixed, LOCAL, 10)
    assert kind == "unreachable"
    assert "Errno 113" in sentence and sentence.startswith("cannot connect to the local app")


def test_each_dial_error_has_its_kind():
    cases = [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "refused"),
        (TimeoutError(), "timeout"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "dns"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "unreachable"),
        (OSError(errno.EACCES, "Permission denied"), "unreachable"),
        (OSError(), "unreachable"),  # nothing to say but its type: still a sentence
    ]
    for exc, kind in cases:
        got, sentence = dial_failure(exc, LOCAL, 2.5)
        assert got == kind, (exc, got)
        assert sentence.startswith("local app") or sentence.startswith("cannot connect")
        assert LOCAL in sentence
    assert dial_failure(TimeoutError(), LOCAL, 2.5)[1].endswith("within 2.5s (localhost:3000)")


def test_lost_connection_kinds():
    assert lost_failure(None, LOCAL, False) == (
        "closed",
        "local app closed the connection before answering (localhost:3000)",
    )
    assert lost_failure(ConnectionResetError(), LOCAL, True) == (
        "reset",
        "local app reset the connection mid-response (localhost:3000)",
    )
    kind, sentence = lost_failure(BrokenPipeError(errno.EPIPE, "Broken pipe"), LOCAL, False)
    assert kind == "reset" and "Broken pipe" in sentence
