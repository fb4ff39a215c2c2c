"""Chunked framing's line rules cost time in proportion to the line, whatever it holds."""

from __future__ import annotations

import time

import pytest

from relay.http.chunked import MAX_CHUNK_LINE
from relay.http.framing import Http1Framer, HttpError

CHUNKED = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"


@pytest.mark.parametrize("tail", [b"\x01", b"\x7f", b"\x00"])
def test_a_long_trailer_line_is_refused_in_linear_time(tail):
    # A pattern that let two runs share the spaces after the colon took ~130 ms of CPU here
    # (quadratic backtracking) to refuse one 4 KiB line; linear, it takes well under 1 ms.
    line = b"x:" + b" " * (MAX_CHUNK_LINE - 8) + tail + b"\r\n"
    started = time.process_time()
    with pytest.raises(HttpError) as refused:
        Http1Framer("request").receive(CHUNKED + line)
    assert time.process_time() - started < 0.05
    assert refused.value.status == 400
