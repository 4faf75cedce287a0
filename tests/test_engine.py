"""The engine over an in-memory backend: the gate, ordering, failures, parallelism, re-runs.

The engine is the only way to change anything, so every safety rule is asserted here
through `Engine.apply` with the flags a user would pass, counting the writes the backend
received (a refused apply must have sent none).
"""

from __future__ import annotations

import dataclasses
import os
import signal

import pytest

from tests.factories import desired, live, want
from tests.fakes import FakeProvider
from voltage_iac.engine import ApplyEvents, ApplyOptions, Engine
from voltage_iac.errors import ApiError, SafetyError
from voltage_iac.kinds.wallet import Policies


def _provider(**kwargs):
    return FakeProvider(lines=live().lines_of_credit, **kwargs)


def _apply(state, provider, **options):
    return Engine(state, provider).apply(ApplyOptions(**options)).report


def test_apply_converges_and_second_plan_is_empty():
    state = desired(want("a"), want("b", policies=Policies(max_payment_size_sats=10)))
    provider = _provider()
    report = _apply(state, provider, parallelism=2)
    assert report.ok
    assert {r.status for r in report.results} == {"done"}
    assert not Engine(state, provider).plan().has_changes
    assert ("policies", report.results[1].id) in provider.calls


def test_replace_creates_the_new_wallet_before_deleting_the_old():
    provider = _provider()
    _apply(desired(want("a", limit=1)), provider)
    old_id = next(iter(provider.wallets))
    provider.calls.clear()
    report = _apply(desired(want("a", limit=2)), provider, allow_replace=True)
    assert report.ok
    assert [c[0] for c in provider.calls] == ["create", "delete"]
    assert provider.calls[1] == ("delete", old_id)


def test_one_failure_does_not_stop_the_others_and_a_rerun_finishes():
    state = desired(want("a"), want("b"), want("c"))
    provider = _provider()
    plan = Engine(state, provider).plan()
    b_id = next(c.new_id for c in plan.actionable if c.key == "b")
    provider.fail[("create", b_id)] = "boom"
    report = _apply(state, provider, parallelism=1)
    assert [(r.key, r.status) for r in report.results] == [
        ("a", "done"),
        ("b", "failed"),
        ("c", "done"),
    ]
    assert "boom" in report.failed[0].message
    del provider.fail[("create", b_id)]
    rerun = Engine(state, provider).plan()
    assert [c.key for c in rerun.actionable] == ["b"]
    assert _apply(state, provider).ok
    assert len(provider.wallets) == 3


def test_parallelism_is_bounded():
    state = desired(*(want(f"w{i}") for i in range(12)))
    provider = _provider(delay=0.02)
    assert _apply(state, provider, parallelism=3).ok
    assert 1 < provider.max_running <= 3


def test_ctrl_c_lets_running_operations_finish_and_reports_the_rest_not_started():
    state = desired(*(want(f"w{i}") for i in range(5)))
    provider = _provider(delay=0.05)
    interrupted = []

    def on_start(change):
        if not interrupted:
            interrupted.append(change.key)
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does

    running: list[int] = []
    outcome = Engine(state, provider).apply(
        ApplyOptions(parallelism=1),
        ApplyEvents(on_start=on_start, on_interrupt=running.append),
    )
    report = outcome.report
    assert report.interrupted and not report.ok
    assert running == [1]
    assert [r.status for r in report.results].count("done") == 1
    assert len(report.not_started) == 4
    # a re-run finishes the job without duplicates
    assert _apply(state, provider).ok
    assert len(provider.wallets) == 5


def test_the_gate_refuses_before_any_write():
    provider = _provider()
    _apply(desired(want("a"), want("b")), provider)
    provider.calls.clear()
    with pytest.raises(SafetyError) as refused:
        _apply(desired(want("a", name="Renamed")), provider)  # b would be deleted
    assert "--allow-delete" in str(refused.value)
    assert provider.calls == []  # the rename of a was not sent either


def test_confirmation_comes_after_the_gate_and_can_cancel():
    provider = _provider()
    asked = []

    def confirm(plan):
        asked.append(plan.checksum())
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Engine(desired(want("a")), provider).apply(ApplyOptions(), ApplyEvents(confirm=confirm))
    assert len(asked) == 1 and provider.calls == []


# -- money safety -----------------------------------------------------------------------


def _fund(provider, wallet_id):
    provider.wallets[wallet_id] = dataclasses.replace(provider.wallets[wallet_id], has_funds=True)


def test_a_funded_wallet_is_never_replaced_or_deleted_whatever_the_flags():
    provider = _provider()
    _apply(desired(want("a", limit=1), want("b")), provider)
    for wallet_id in list(provider.wallets):
        _fund(provider, wallet_id)
    provider.calls.clear()
    plan = Engine(desired(want("a", limit=2)), provider).plan()
    assert all(c.blocked for c in plan.actionable)
    assert all("drain it first" in c.blocked[0] for c in plan.actionable)
    with pytest.raises(SafetyError) as refused:
        _apply(
            desired(want("a", limit=2)), provider, allow_replace=True, allow_delete=True, force=True
        )
    assert str(refused.value).count("holds funds") == 2
    assert provider.calls == []


def test_funds_arriving_during_a_replacement_undo_the_new_wallet():
    provider = _provider()
    _apply(desired(want("a", limit=1)), provider)
    old_id = next(iter(provider.wallets))
    provider.fail[("delete", old_id)] = ApiError(
        "the wallet still holds funds", status=400, error_type="wallet_not_empty"
    )
    report = _apply(desired(want("a", limit=2)), provider, allow_replace=True)
    [failure] = report.failed
    assert "undone" in failure.message and "drain" in failure.message
    active = [w for w in provider.wallets.values() if w.active]
    assert [w.id for w in active] == [old_id]  # exactly one live wallet, the funded one


def test_a_failed_delete_after_a_replacement_says_the_new_wallet_exists():
    provider = _provider()
    _apply(desired(want("a", limit=1)), provider)
    old_id = next(iter(provider.wallets))
    provider.fail[("delete", old_id)] = "the server failed"
    report = _apply(desired(want("a", limit=2)), provider, allow_replace=True)
    [failure] = report.failed
    assert "was created" in failure.message and old_id in failure.message
    # the next plan finishes the replacement by deleting the leftover
    [change] = Engine(desired(want("a", limit=2)), provider).plan().actionable
    assert change.superseded and change.id == old_id


def test_protection_survives_removal_from_the_configuration():
    provider = _provider()
    _apply(desired(want("vault", protect=True), want("other")), provider)
    vault_id = next(w.id for w in provider.wallets.values() if w.name == "Wallet vault")
    provider.calls.clear()
    removed = desired(want("other"))  # vault's entry is gone
    [change] = Engine(removed, provider).plan().actionable
    assert change.protected and change.id == vault_id
    with pytest.raises(SafetyError) as refused:
        _apply(removed, provider, allow_delete=True, force=True)
    assert "is protected" in str(refused.value) and "--unprotect vault" in str(refused.value)
    assert provider.calls == []
    report = _apply(removed, provider, allow_delete=True, unprotect=frozenset({"vault"}))
    assert report.ok and provider.calls == [("delete", vault_id)]


def test_an_id_taken_by_an_unlabelled_wallet_is_never_created_again():
    provider = _provider()
    state = desired(want("a"))
    _apply(state, provider)
    [wallet_id] = list(provider.wallets)
    provider.wallets[wallet_id] = dataclasses.replace(provider.wallets[wallet_id], owner=None)
    provider.calls.clear()
    plan = Engine(state, provider).plan()
    [change] = plan.actionable
    assert change.action.value == "create" and change.new_id == wallet_id
    assert "already exists" in change.blocked[0] and f"id: {wallet_id}" in change.blocked[0]
    with pytest.raises(SafetyError):
        _apply(state, provider, force=True, allow_delete=True, allow_replace=True)
    assert provider.calls == []
