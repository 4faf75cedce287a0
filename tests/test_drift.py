"""Drift detection and its formats (JUnit parsed as XML)."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET

from tests.factories import ENV, desired, live, live_of, want
from voltage_iac.diff import diff
from voltage_iac.drift import detect_drift
from voltage_iac.kinds.wallet import LiveWallet
from voltage_iac.render.drift import (
    render_drift_json,
    render_drift_junit,
    render_drift_markdown,
    render_drift_text,
)


def _report(state, live_state):
    return detect_drift(state, live_state, diff(state, live_state))


def test_in_sync():
    w = want("a")
    report = _report(desired(w), live(live_of(w)))
    assert report.in_sync
    assert "In sync" in render_drift_text(report)


def test_field_changes_missing_deleted_orphaned_unmanaged_and_failed_deletion():
    a, b, c = want("a", name="Configured"), want("b"), want("c")
    state = desired(a, b, c)
    stranger = LiveWallet(
        id="be4a2c3c-6f5b-4d7e-9ac1-5b6c7d8e9fa0", name="Legacy", environment_id=ENV
    )
    live_state = live(
        live_of(a, name="Changed by hand"),
        live_of(c, active=False, deleted_at="2026-01-01T00:00:00Z"),
        live_of(want("gone")),
        live_of(b, deletion_failed_at="2026-02-02T00:00:00Z"),
        stranger,
    )
    report = _report(state, live_state)
    findings = {(i.subject, i.finding) for i in report.items}
    assert findings == {
        ("a", "changed"),
        ("c", "deleted"),
        ("gone", "orphaned"),
        ("b", "deletion_failed"),
    }
    # a hand-made wallet is reported, but is drift only when the user asks for that
    assert [(i.subject, i.finding) for i in report.notices] == [("Legacy", "unmanaged")]
    strict = detect_drift(state, live_state, diff(state, live_state), unmanaged="fail")
    assert ("Legacy", "unmanaged") in {(i.subject, i.finding) for i in strict.items}
    [changed] = report.items_for("wallet", "a")
    assert (changed.field, changed.expected, changed.actual) == (
        "name",
        "Configured",
        "Changed by hand",
    )


def test_ignore_rules_per_wallet_and_global():
    a = want("a", metadata={"owner": "x"}, ignore=("metadata.owner",))
    b = want("b", metadata={"sync-id": "1"})
    state = dataclasses.replace(desired(a, b), ignore=("b:metadata.sync-*", "Legacy*:unmanaged"))
    stranger = LiveWallet(
        id="be4a2c3c-6f5b-4d7e-9ac1-5b6c7d8e9fa0", name="Legacy", environment_id=ENV
    )
    live_state = live(
        live_of(a, metadata={"owner": "y"}), live_of(b, metadata={"sync-id": "2"}), stranger
    )
    report = detect_drift(state, live_state, diff(state, live_state), unmanaged="fail")
    assert report.in_sync
    assert len(report.ignored) == 3


def test_ignore_does_not_hide_other_fields():
    a = want("a", name="Right", ignore=("metadata.*",))
    report = _report(desired(a), live(live_of(a, name="Wrong")))
    assert [i.field for i in report.items] == ["name"]


def test_junit_has_one_case_per_wallet_and_a_failure_per_drifted_wallet():
    a, b = want("a"), want("b", name="B")
    report = _report(desired(a, b), live(live_of(a), live_of(b, name="Other")))
    root = ET.fromstring(render_drift_junit(report))
    cases = root.findall(".//testcase")
    assert [c.get("name") for c in cases] == ["a", "b"]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None and "name" in failure.text
    assert root.find("testsuite").get("failures") == "1"


def test_json_and_markdown():
    a = want("a", name="B")
    report = _report(desired(a), live(live_of(a, name="C")))
    doc = json.loads(render_drift_json(report))
    assert doc["in_sync"] is False and doc["drift"][0]["field"] == "name"
    assert "| wallet `a` | `name` changed |" in render_drift_markdown(report)


def test_another_stacks_wallets_are_never_this_stacks_drift():
    a = want("a")
    theirs = live_of(want("x"), stack="other-stack")
    report = _report(desired(a), live(live_of(a), theirs))
    assert report.in_sync
    [notice] = report.notices
    assert (notice.finding, notice.owner_stack) == ("foreign", "other-stack")
    strict = detect_drift(
        desired(a),
        live(live_of(a), theirs),
        diff(desired(a), live(live_of(a), theirs)),
        unmanaged="fail",
    )
    assert strict.in_sync  # even when hand-made wallets fail the check
    root = ET.fromstring(render_drift_junit(strict, seconds=1.5))
    suite = root.find("testsuite")
    assert suite.get("skipped") == "1" and suite.get("time") == "1.500"
    assert suite.get("timestamp")
    skipped = [c.get("name") for c in root.iter("testcase") if c.find("skipped") is not None]
    assert skipped == ["Wallet x"]
