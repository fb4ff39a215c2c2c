"""The sender's writev loop: every byte once, in order, whole writes and partial ones alike."""

from __future__ import annotations

import os
import threading

import pytest

from inspector import pipe_io
from inspector.pipe_io import IOV_GROUP, write_all


def _pieces() -> list[bytes]:
    # More pieces than one writev group, empty ones, and pieces larger than a pipe's buffer.
    out = []
    for i in range(IOV_GROUP * 2 + 37):
        size = (i * 7919) % 3000 if i % 50 else 200_000 + i
        out.append(bytes([i % 251]) * size if i % 13 else b"")
    return out


def _drain(fd: int, into: bytearray) -> threading.Thread:
    def read() -> None:
        while chunk := os.read(fd, 65536):
            into.extend(chunk)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _write_through_pipe(pieces: list[bytes]) -> tuple[bool, bytes]:
    read_fd, write_fd = os.pipe()
    got = bytearray()
    reader = _drain(read_fd, got)
    try:
        ok = write_all(write_fd, pieces)
    finally:
        os.close(write_fd)
    reader.join(30)
    os.close(read_fd)
    return ok, bytes(got)


@pytest.mark.skipif(not hasattr(os, "writev"), reason="writev is POSIX")
def test_whole_writes_carry_every_piece_in_order() -> None:
    pieces = _pieces()
    ok, got = _write_through_pipe(pieces)
    assert ok
    assert got == b"".join(pieces)


@pytest.mark.skipif(not hasattr(os, "writev"), reason="writev is POSIX")
def test_partial_writes_resume_where_the_last_one_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    # A blocking pipe takes a whole writev unless a signal interrupts it: the kernel's partial
    # counts are made here by passing on only a part of each call's pieces (real writes still).
    real_writev = os.writev
    calls = []

    def partial_writev(fd: int, buffers: list[bytes | memoryview]) -> int:
        limit = 1 + (len(calls) * 104_729) % 150_000  # odd cuts: mid-piece and on edges
        calls.append(limit)
        data = b"".join(bytes(b) for b in buffers)[:limit]
        return real_writev(fd, [data])

    monkeypatch.setattr(pipe_io.os, "writev", partial_writev)
    pieces = _pieces()
    ok, got = _write_through_pipe(pieces)
    assert ok
    assert len(calls) > 2 * len(pieces) // IOV_GROUP  # partial writes did happen
    assert got == b"".join(pieces)


@pytest.mark.skipif(not hasattr(os, "writev"), reason="writev is POSIX")
def test_a_closed_pipe_says_false_instead_of_raising() -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    try:
        assert write_all(write_fd, [b"x" * 10, b"y"]) is False
    finally:
        os.close(write_fd)
