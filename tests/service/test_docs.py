"""The README's `molehill service` commands are ones the command line accepts."""

from __future__ import annotations

import re
import shlex

from tests.service.support import ROOT
from tui.cli import build_parser


def test_readme_service_commands_parse():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Background service", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^(molehill(?: service [a-z]+.*?)?)(?:\s{2,}#.*)?$", section, re.M)
    assert len(commands) >= 6, commands
    parser = build_parser()
    for command in commands:
        args = parser.parse_args(shlex.split(command)[1:])
        assert getattr(args, "service_action", None) or command == "molehill", command
