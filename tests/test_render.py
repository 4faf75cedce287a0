"""Text and JSON rendering of plans as reviewers and machines read them."""

from __future__ import annotations

import json

from tests.factories import desired, live, live_of, want
from voltage_iac.diff import diff
from voltage_iac.render.jsonfmt import render_json
from voltage_iac.render.text import render_text


def _plan():
    return diff(
        desired(
            want("new", limit=100_000_000),
            want("renamed", name="After"),
            want("bigger", limit=2000),
        ),
        live(
            live_of(want("renamed", name="Before")),
            live_of(want("bigger", limit=1000)),
            live_of(want("removed")),
        ),
    )


def test_text_uses_reviewer_symbols_and_final_count_line():
    text = render_text(_plan())
    assert "+ wallet new (staging) will be created" in text
    assert "~ wallet renamed (staging) will be updated in place" in text
    assert '~ name = "Before" -> "After"' in text
    assert "-/+ wallet bigger (staging) must be replaced (the limit is fixed at creation)" in text
    assert "- wallet removed (staging) will be destroyed" in text
    assert text.rstrip().endswith("Plan: 1 to add, 1 to change, 1 to replace, 1 to destroy.")


def test_limits_shown_in_msats_and_btc():
    text = render_text(_plan())
    assert "100000000 msats (0.001 BTC)" in text
    assert "1000 msats (0.00000001 BTC) -> 2000 msats (0.00000002 BTC)" in text
    assert "# forces replacement" in text


def test_no_colour_codes_unless_asked():
    assert "\x1b[" not in render_text(_plan(), color=False)
    assert "\x1b[" in render_text(_plan(), color=True)


def test_no_changes_message():
    w = want("a")
    text = render_text(diff(desired(w), live(live_of(w))))
    assert "No changes." in text
    assert "Plan: 0 to add, 0 to change, 0 to replace, 0 to destroy." in text


def test_json_plan_round_trips_and_is_stable():
    out = render_json(_plan())
    assert out == render_json(_plan())
    doc = json.loads(out)
    assert [c["action"] for c in doc["changes"]] == ["replace", "create", "delete", "update"]
