"""Every `molehill ... --help`, run as a real process: exits 0 and documents every option."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from tests.support.cli import ROOT, molehill_env
from tui.cli import build_parser


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(argv prefix, parser) for the command and each subcommand under it, depth first."""
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += commands(sub, (*path, name))
    return found


ALL = commands(build_parser())


def test_every_subcommand_is_covered():
    names = {" ".join(path) for path, _ in ALL}
    assert {"", "http", "start", "relay", "relay token", "relay token add", "profiles"} <= names


@pytest.mark.parametrize(("path", "parser"), ALL, ids=[" ".join(p) or "molehill" for p, _ in ALL])
def test_help_exits_0_and_documents_each_option(path, parser):
    done = subprocess.run(
        [sys.executable, "-m", "tui.cli", *path, "--help"],
        cwd=ROOT,
        env=molehill_env({"COLUMNS": "100"}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = done.stdout
    assert out.startswith("usage: molehill"), out
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        flag = max(action.option_strings, key=len)
        assert action.help, f"`molehill {' '.join(path)}`: {flag} has no help text"
        assert flag in out, f"{flag} missing from `molehill {' '.join(path)} --help`"


def test_relay_help_does_not_make_token_look_required():
    done = subprocess.run(
        [sys.executable, "-m", "tui.cli", "relay", "--help"],
        cwd=ROOT,
        env=molehill_env({"COLUMNS": "100"}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    usage = done.stdout.split("\n\n")[0]
    assert usage.splitlines()[0] == "usage: molehill relay [options]"
    assert "token ..." not in usage.splitlines()[0]
    assert "molehill relay token {add,list,revoke}" in usage
    assert "positional arguments" not in done.stdout


def test_http_help_names_the_target_forms_and_the_new_options():
    done = subprocess.run(
        [sys.executable, "-m", "tui.cli", "http", "--help"],
        cwd=ROOT,
        env=molehill_env({"COLUMNS": "100"}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    text = " ".join(done.stdout.split())
    assert "PORT, HOST:PORT, http://HOST:PORT or https://HOST:PORT" in text
    assert "--local-insecure" in text and "--connect-timeout SECONDS" in text
    assert "default 20" in text
