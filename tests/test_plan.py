"""The plan's own safety policy, checksum and JSON document."""

from __future__ import annotations

import json

from tests.factories import desired, live, live_of, want
from voltage_iac.diff import diff
from voltage_iac.model import Guards
from voltage_iac.plan import PLAN_FORMAT_VERSION


def test_replace_refused_without_flag_and_allowed_with_it():
    w = want("a", limit=2)
    plan = diff(desired(w), live(live_of(want("a", limit=1))))
    [violation] = plan.check_safety()
    assert violation.flag == "--allow-replace"
    assert "limit is fixed at creation" in violation.what
    assert plan.check_safety(allow_replace=True) == []


def test_delete_refused_without_flag_and_allowed_with_it():
    plan = diff(desired(), live(live_of(want("gone"))))
    [violation] = plan.check_safety()
    assert violation.flag == "--allow-delete"
    assert plan.check_safety(allow_delete=True) == []


def test_protected_wallet_is_never_replaced_whatever_the_flags():
    w = want("vault", limit=5, protect=True)
    plan = diff(desired(w), live(live_of(want("vault", limit=1))))
    violations = plan.check_safety(allow_delete=True, allow_replace=True, force=True)
    assert [v.flag for v in violations] == ["--unprotect vault"]
    assert "protected" in violations[0].what
    # only naming the key lifts it, and only together with the replace flag
    assert plan.check_safety(allow_replace=True, force=True, unprotect=frozenset({"vault"})) == []
    assert plan.check_safety(force=True, unprotect=frozenset({"vault"}))[0].flag == (
        "--allow-replace"
    )


def test_limit_increase_guard_needs_force():
    w = want("a", limit=100)
    plan = diff(
        desired(w, guards=Guards(limit_increase_factor=10)), live(live_of(want("a", limit=5)))
    )
    flags = [v.flag for v in plan.check_safety(allow_replace=True)]
    assert flags == ["--force"]
    assert plan.check_safety(allow_replace=True, force=True) == []


def test_mass_change_guard_counts_per_environment():
    keep = [want(f"w{i}") for i in range(7)]
    gone = [want(f"old{i}") for i in range(4)]
    state = live(*(live_of(w) for w in keep + gone))
    plan = diff(desired(*keep), state)
    violations = plan.check_safety(allow_delete=True)
    assert [v.flag for v in violations] == ["--force"]
    assert "4 of 11" in violations[0].what
    assert plan.check_safety(allow_delete=True, force=True) == []


def test_mass_change_guard_ignores_small_environments():
    plan = diff(desired(want("a")), live(live_of(want("a")), live_of(want("b"))))
    assert plan.check_safety(allow_delete=True) == []


def test_checksum_changes_when_the_live_state_planned_against_changes():
    w = want("a", name="New")
    one = diff(desired(w), live(live_of(want("a", name="Old"))))
    two = diff(desired(w), live(live_of(want("a", name="Older"))))
    assert one.checksum() != two.checksum()
    assert one.checksum().startswith("sha256:")


def test_json_document_is_versioned_and_deterministic():
    plan = diff(desired(want("a"), want("b")), live())
    doc = plan.to_dict()
    assert doc["format_version"] == PLAN_FORMAT_VERSION
    assert doc["summary"] == {"create": 2, "update": 0, "replace": 0, "delete": 0}
    assert doc["checksum"] == plan.checksum()
    assert json.dumps(doc, sort_keys=True) == json.dumps(
        diff(desired(want("a"), want("b")), live()).to_dict(), sort_keys=True
    )
