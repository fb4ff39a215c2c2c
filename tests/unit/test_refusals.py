"""The dashboard's reading of a relay's name refusals: its own words, the wait, the offer."""

from __future__ import annotations

import pytest

from tui.refusals import MAX_WAIT, RETRY_UNKNOWN, name_refusal

HELD = (
    "the name 'web' is held for its previous agent for 118 more seconds; choose another --subdomain"
)


def test_a_held_name_waits_what_the_relay_said_and_offers_takeover_with_a_token():
    refusal = name_refusal("name_held", HELD, "web", has_token=True)
    assert refusal is not None
    assert refusal.wait == 119 and refusal.takeover
    assert "--subdomain" not in refusal.message and "'web'" in refusal.message
    assert not name_refusal("name_held", HELD, "web", has_token=False).takeover


@pytest.mark.parametrize(
    "message",
    [
        "",
        "held",
        "for 1234567 more seconds",  # more digits than any lease
        "for -5 more seconds",
        "for 1e9 more seconds",
        "for \uff15 more seconds",  # a digit, but not an ASCII one
        "x" * 100_000,
    ],
)
def test_a_held_message_without_a_sane_figure_retries_after_a_default(message):
    refusal = name_refusal("name_held", message, "web", has_token=False)
    assert refusal is not None and refusal.wait == RETRY_UNKNOWN


def test_a_huge_figure_is_capped():
    refusal = name_refusal("name_held", "for 999999 more seconds", "web", has_token=False)
    assert refusal is not None and refusal.wait == MAX_WAIT


def test_taken_and_reserved_names_point_at_the_profile_not_at_flags():
    taken = name_refusal("name_taken", "in use; choose another --subdomain", "web", True)
    assert taken is not None and taken.wait is None and taken.takeover
    assert "press e" in taken.message and "--" not in taken.message
    reserved = name_refusal("name_reserved", "reserved", "web", True)
    assert reserved is not None and not reserved.takeover and reserved.wait is None


def test_other_refusals_are_left_to_the_caller():
    assert name_refusal("token_revoked", "the token was revoked", "web", True) is None
    assert name_refusal("", "", "", False) is None
