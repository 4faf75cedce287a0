"""The apply engine over an in-memory provider: ordering, failures, parallelism, re-runs."""

from __future__ import annotations

import threading

from tests.factories import desired, live, want
from tests.fakes import FakeProvider
from voltage_iac.apply import apply_plan, make_plan
from voltage_iac.model import Policies


def _provider():
    return FakeProvider(lines=live().lines_of_credit)


def test_apply_converges_and_second_plan_is_empty():
    state = desired(want("a"), want("b", policies=Policies(max_payment_size_sats=10)))
    provider = _provider()
    report = apply_plan(make_plan(state, provider), provider, parallelism=2)
    assert report.ok
    assert {r.status for r in report.results} == {"done"}
    assert not make_plan(state, provider).has_changes
    assert ("policies", report.results[1].wallet_id) in provider.calls


def test_replace_creates_the_new_wallet_before_deleting_the_old():
    provider = _provider()
    apply_plan(make_plan(desired(want("a", limit=1)), provider), provider)
    old_id = next(iter(provider.wallets))
    provider.calls.clear()
    report = apply_plan(make_plan(desired(want("a", limit=2)), provider), provider)
    assert report.ok
    assert [c[0] for c in provider.calls] == ["create", "delete"]
    assert provider.calls[1] == ("delete", old_id)


def test_one_failure_does_not_stop_the_others_and_a_rerun_finishes():
    state = desired(want("a"), want("b"), want("c"))
    provider = _provider()
    plan = make_plan(state, provider)
    b_id = next(c.new_wallet_id for c in plan.actionable if c.key == "b")
    provider.fail[("create", b_id)] = "boom"
    report = apply_plan(plan, provider, parallelism=1)
    assert [(r.key, r.status) for r in report.results] == [
        ("a", "done"),
        ("b", "failed"),
        ("c", "done"),
    ]
    assert "boom" in report.failed[0].message
    del provider.fail[("create", b_id)]
    rerun = make_plan(state, provider)
    assert [c.key for c in rerun.actionable] == ["b"]
    assert apply_plan(rerun, provider).ok
    assert len(provider.wallets) == 3


def test_parallelism_is_bounded():
    state = desired(*(want(f"w{i}") for i in range(12)))
    provider = FakeProvider(lines=live().lines_of_credit, delay=0.02)
    assert apply_plan(make_plan(state, provider), provider, parallelism=3).ok
    assert 1 < provider.max_running <= 3


def test_stop_event_leaves_remaining_operations_not_started():
    state = desired(*(want(f"w{i}") for i in range(5)))
    provider = _provider()
    stop = threading.Event()
    seen = []

    def on_result(result):
        seen.append(result)
        stop.set()

    report = apply_plan(
        make_plan(state, provider), provider, parallelism=1, on_result=on_result, stop=stop
    )
    assert [r.status for r in report.results].count("done") == 1
    assert len(report.not_started) == 4
    assert not report.ok
    # a re-run finishes the job without duplicates
    assert apply_plan(make_plan(state, provider), provider).ok
    assert len(provider.wallets) == 5


def test_failed_delete_after_replace_says_the_new_wallet_exists():
    provider = _provider()
    apply_plan(make_plan(desired(want("a", limit=1)), provider), provider)
    old_id = next(iter(provider.wallets))
    provider.fail[("delete", old_id)] = "wallet_not_empty"
    report = apply_plan(make_plan(desired(want("a", limit=2)), provider), provider)
    [failure] = report.failed
    assert "was created" in failure.message and old_id in failure.message
    # the next plan finishes the replacement by deleting the leftover
    plan = make_plan(desired(want("a", limit=2)), provider)
    [change] = plan.actionable
    assert change.superseded and change.wallet_id == old_id
