"""Fixtures of the dashboard tests: an app with fixed data (see canned.py)."""

from __future__ import annotations

import time

import pytest

from tests.tui.canned import CannedApp, canned_profiles


@pytest.fixture
def canned_app(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    path = tmp_path / "profiles.toml"
    canned_profiles(path)
    yield CannedApp(path)
    monkeypatch.delenv("TZ")
    time.tzset()
