"""The pure diff over literal inputs: what a reviewer will be shown for each situation."""

from __future__ import annotations

import dataclasses

from tests.factories import ENV, ENV_PROD, LOC, ORG, STACK, desired, live, live_of, want
from voltage_iac import identity
from voltage_iac.diff import diff
from voltage_iac.kinds.wallet import LiveWallet, Policies, limit_growth
from voltage_iac.model import LineOfCreditSummary, Ownership, frozen_map
from voltage_iac.plan import Action


def actions(plan):
    return [(c.key, c.action) for c in plan.actionable]


def test_new_wallet_is_created_with_deterministic_generation_zero_id():
    w = want("payouts")
    plan = diff(desired(w), live())
    [change] = plan.actionable
    assert change.action is Action.CREATE
    assert change.generation == 0
    assert change.new_id == identity.wallet_id(ORG, ENV, STACK, "payouts", 0)
    assert {f.field: f.after for f in change.fields}["limit"] == 1000


def test_same_inputs_give_the_same_plan_and_checksum():
    w = want("payouts")
    assert diff(desired(w), live()).checksum() == diff(desired(w), live()).checksum()


def test_wallet_in_sync_is_a_noop_even_when_balances_and_timestamps_differ():
    w = want("payouts", metadata={"team": "payouts"})
    current = live_of(w, has_funds=True, deleted_at=None)
    plan = diff(desired(w), live(current))
    assert not plan.has_changes
    assert [c.action for c in plan.changes] == [Action.NOOP]
    assert plan.summary_line() == "Plan: 0 to add, 0 to change, 0 to replace, 0 to destroy."


def test_rename_is_an_update_in_place():
    w = want("payouts", name="Payouts EU")
    current = live_of(w, name="Payouts")
    [change] = diff(desired(w), live(current)).actionable
    assert change.action is Action.UPDATE
    assert change.id == current.id
    assert [(f.field, f.before, f.after) for f in change.fields] == [
        ("name", "Payouts", "Payouts EU")
    ]


def test_policy_change_is_an_update_with_field_level_items():
    w = want("payouts", policies=Policies(max_payment_size_sats=500, transactions_per_minute=6))
    current = live_of(w, policies=Policies(max_payment_size_sats=100))
    [change] = diff(desired(w), live(current)).actionable
    assert change.action is Action.UPDATE
    assert [(f.field, f.before, f.after) for f in change.fields] == [
        ("policies.max_payment_size_sats", 100, 500),
        ("policies.transactions_per_minute", None, 6),
    ]


def test_unmanaged_policies_are_not_compared():
    w = want("payouts", policies=None)
    current = live_of(w, policies=Policies(max_payment_size_sats=100))
    assert not diff(desired(w), live(current)).has_changes


def test_limit_change_is_a_replacement_with_the_next_generation():
    w = want("payouts", limit=2000)
    current = live_of(w, limit=1000)
    [change] = diff(desired(w), live(current)).actionable
    assert change.action is Action.REPLACE
    assert change.id == current.id
    assert change.generation == 1
    assert change.new_id == identity.wallet_id(ORG, ENV, STACK, "payouts", 1)
    assert change.reasons == ("the limit is fixed at creation",)
    assert limit_growth(change.action, change.fields) == 2
    assert change.notes[0].startswith("limit grows 2x (")


def test_each_immutable_field_forces_replacement():
    base = want("w")
    cases = {
        "metadata": (dataclasses.replace(base, metadata=frozen_map({"a": "b"})), "metadata.a"),
        "line_of_credit": (
            dataclasses.replace(base, line_of_credit_id="11111111-1111-4111-8111-111111111111"),
            "line_of_credit",
        ),
        "network": (dataclasses.replace(base, network="mainnet"), "network"),
        "environment": (want("w", env="production"), "environment"),
    }
    for name, (changed, field) in cases.items():
        [change] = diff(desired(changed), live(live_of(base))).actionable
        assert change.action is Action.REPLACE, name
        assert change.field(field) is not None, name


def test_testnet3_in_config_matches_testnet_in_responses():
    w = want("t", network="testnet3")
    current = live_of(w, network="testnet")
    assert not diff(desired(w), live(current)).has_changes


def test_owned_wallet_missing_from_config_is_deleted():
    gone = want("old")
    current = live_of(gone)
    plan = diff(desired(), live(current))
    [change] = plan.actionable
    assert change.action is Action.DELETE
    assert change.id == current.id
    assert not change.superseded


def test_wallets_of_other_stacks_and_unlabelled_wallets_are_unmanaged_never_changed():
    foreign = live_of(want("x"), stack="other-team")
    unlabelled = LiveWallet(
        id="be4a2c3c-6f5b-4d7e-9ac1-5b6c7d8e9fa0",
        name="Legacy treasury",
        environment_id=ENV,
        network="mutinynet",
        limit=0,
    )
    plan = diff(desired(), live(foreign, unlabelled))
    assert not plan.has_changes
    assert {u.name for u in plan.unmanaged} == {"Wallet x", "Legacy treasury"}
    assert {u.owner_stack for u in plan.unmanaged} == {"other-team", None}


def test_interrupted_replacement_leaves_old_generation_planned_as_superseded_delete():
    w = want("payouts", limit=2000)
    old = live_of(w, limit=1000, generation=0)
    new = live_of(w, generation=1)
    plan = diff(desired(w), live(old, new))
    [change] = plan.actionable
    assert change.action is Action.DELETE
    assert change.superseded
    assert change.id == old.id


def test_deleted_generations_are_never_reused():
    w = want("payouts")
    deleted = live_of(w, generation=0, active=False, deleted_at="2026-01-01T00:00:00Z")
    [change] = diff(desired(w), live(deleted)).actionable
    assert change.action is Action.CREATE
    assert change.generation == 1
    assert change.new_id != deleted.id


def test_pinned_wallet_is_adopted_without_ownership_labels():
    existing = LiveWallet(
        id="be4a2c3c-6f5b-4d7e-9ac1-5b6c7d8e9fa0",
        name="Legacy treasury",
        environment_id=ENV,
        network="mutinynet",
        line_of_credit_id=LOC,
        limit=0,
        metadata=frozen_map({"team": "finance"}),
    )
    w = want(
        "treasury",
        name="Legacy treasury",
        limit=0,
        metadata={"team": "finance"},
        pinned_id=existing.id,
    )
    plan = diff(desired(w), live(existing))
    assert not plan.has_changes
    assert plan.unmanaged == ()


def test_capacity_problem_when_creates_exceed_the_line_of_credit():
    plan = diff(desired(want("a", limit=600), want("b", limit=600)), live(available=1000))
    [problem] = plan.problems
    assert "1200 msats" in problem.message and "1000 msats" in problem.message
    assert plan.check_safety(allow_delete=True, allow_replace=True, force=True)


def test_capacity_problem_for_a_disabled_or_mismatched_line():
    state = live()
    lines = dict(state.lines_of_credit)
    lines[LOC] = LineOfCreditSummary(LOC, ENV, "mainnet", 10**9, 0)
    state = dataclasses.replace(state, lines_of_credit=frozen_map(lines))
    [problem] = diff(desired(want("a")), state).problems
    assert "mutinynet" in problem.message and "mainnet" in problem.message


def test_targets_limit_the_plan():
    plan = diff(desired(want("a"), want("b")), live(), targets=["b"])
    assert actions(plan) == [("b", Action.CREATE)]
    assert plan.targets == ("b",)


def test_mainnet_changes_are_flagged():
    [change] = diff(desired(want("p", env="production")), live()).actionable
    assert change.mainnet
    assert change.environment == "production"


def test_deletion_failure_is_reported_as_a_warning():
    w = want("a")
    failed = live_of(w, deletion_failed_at="2026-01-02T00:00:00Z")
    plan = diff(desired(w), live(failed))
    assert any("deletion failed" in warning for warning in plan.warnings)


def test_changes_are_sorted_by_environment_then_key():
    plan = diff(
        desired(want("z"), want("a"), want("m", env="production")),
        live(),
    )
    assert [(c.environment, c.key) for c in plan.actionable] == [
        ("production", "m"),
        ("staging", "a"),
        ("staging", "z"),
    ]


def test_owner_generation_comes_from_labels():
    w = want("a")
    current = live_of(w, generation=3)
    assert current.owner == Ownership(STACK, "a", 3)
    [change] = diff(desired(dataclasses.replace(w, limit=5)), live(current)).actionable
    assert change.generation == 4
    assert change.new_id == identity.wallet_id(ORG, ENV, STACK, "a", 4)
    assert ENV_PROD != ENV
