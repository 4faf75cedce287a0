"""No fault schedule produces a duplicate or an extra wallet (property-based).

Hypothesis draws a configuration (a few wallets with random names, limits, metadata and
policies), then up to five apply runs, each with its own fault schedule (random rates of
fail-before-commit, fail-after-commit, drop-after-commit, 429s, slow visibility, failed
deletions, latency, a fault seed, and scripted rules) and optionally an edit of the
configuration before it (rename, limit or metadata change: a replacement, policy change,
removal, addition). Each run goes through the engine (`Engine.apply`, the
flags `--allow-replace --allow-delete --force` in effect) against an embedded emulator.

Checked, straight from the emulator's store:
- after every operation and every run: every wallet of the stack has the deterministic
  id of its key and generation, and no key has more live wallets than one plus the
  replacements planned for it (the old wallet of a replacement lives until its delete
  lands; a failed delete leaves it for the next run);
- after a run that started from a settled world and reported success: the live state
  equals the configuration (a run that says "done" is done);
- once the faults are cleared and the world has settled: one more apply reports success
  and the live state equals the configuration, and a new plan has no changes.

Default budget: a handful of examples (a few seconds each). VOLTAGE_IAC_SLOW=1: many more.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import TEST_KEY
from tests.reliability_helpers import (
    KEYS,
    Config,
    Spec,
    budget,
    check_claims,
    check_converged,
    check_no_extra,
    engine_apply,
    engine_provider,
    eventual_view,
    live_by_key,
    policies_reader,
    replacement_keys,
    wait_settled,
    write_config,
)
from voltage_iac.config import load_config
from voltage_iac.emulator import EmbeddedEmulator, FaultRule, Faults
from voltage_iac.emulator.seed import DEMO_SEED
from voltage_iac.engine import Engine, OperationResult
from voltage_iac.plan import Plan
from voltage_iac.secret import Secret

MAX_FAULT_RUNS = 5
SLOW_VISIBILITY_SECONDS = 0.4
EXAMPLES = budget(12, 150)  # VOLTAGE_IAC_SLOW=1: the large budget

RATES = st.sampled_from([0.0, 0.0, 0.1, 0.25, 0.5])
WRITE_FAULTS = ("fail_before_commit", "fail_after_commit", "drop_after_commit")


@st.composite
def specs(draw: st.DrawFn, key: str) -> Spec:
    variant = draw(st.integers(0, 99))
    suffix = draw(st.sampled_from(["", " wallet", " – payouts", " Ω", "  desk"]))
    metadata = draw(
        st.dictionaries(
            st.sampled_from(["team", "cost-center", "région"]),
            st.sampled_from(["ops", "finance", "x" * 40, "été"]),
            max_size=2,
        )
    )
    return Spec(
        # The key in the name keeps names unique within the environment.
        name=f"{key.title()} {variant}{suffix}",
        limit_sats=draw(st.sampled_from([0, 1, 1000, 2500, 50_000])),
        metadata=tuple(sorted(metadata.items())),
        max_payment_size_sats=draw(st.sampled_from([None, None, 10, 5000])),
    )


@st.composite
def fault_settings(draw: st.DrawFn) -> dict[str, Any]:
    rules = draw(
        st.lists(
            st.builds(
                FaultRule,
                fault=st.sampled_from(
                    [*WRITE_FAULTS, "rate_limit", "slow_visibility", "deletion_fails"]
                ),
                method=st.sampled_from(["POST", "PATCH", "DELETE", "GET", None]),
                path_contains=st.sampled_from(["/wallets", "/policies", ""]),
                times=st.integers(1, 3),
            ),
            max_size=3,
        )
    )
    return {
        "seed": draw(st.integers(0, 2**32)),
        "latency_ms": draw(st.sampled_from([0, 0, 5, 20])),
        "visibility_delay": draw(st.sampled_from([0.0, 0.03, 0.1])),
        "slow_visibility_seconds": SLOW_VISIBILITY_SECONDS,
        "retry_after_ms": 20,
        "fail_before_commit": draw(RATES),
        "fail_after_commit": draw(RATES),
        "drop_after_commit": draw(RATES),
        "rate_limit": draw(st.sampled_from([0.0, 0.1, 0.3])),
        "slow_visibility": draw(RATES),
        "deletion_fails": draw(st.sampled_from([0.0, 0.0, 0.2])),
        "schedule": rules,
    }


@dataclass
class RunPlan:
    edit: tuple[str, str, Spec | None] | None  # (kind, key, new spec)
    faults: dict[str, Any]
    settle_first: bool
    wait_timeout: float
    parallelism: int


@dataclass
class Scenario:
    initial: Config
    runs: list[RunPlan]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True))
    initial = {key: draw(specs(key)) for key in keys}
    runs = []
    config = dict(initial)
    for _ in range(draw(st.integers(1, MAX_FAULT_RUNS))):
        # Edits aim at the configuration as it is by then, so that few are no-ops.
        kinds = ["none", "rename", "limit", "metadata", "policies"]
        kinds += ["remove"] if len(config) > 1 else []
        kinds += ["add"] if len(config) < len(KEYS) else []
        kind = draw(st.sampled_from(kinds))
        edit = None
        if kind != "none":
            pool = [k for k in KEYS if k not in config] if kind == "add" else sorted(config)
            key = draw(st.sampled_from(pool))
            edit = (kind, key, draw(specs(key)))
            config = apply_edit(config, edit)
        runs.append(
            RunPlan(
                edit=edit,
                faults=draw(fault_settings()),
                settle_first=draw(st.booleans()),
                wait_timeout=draw(st.sampled_from([0.2, 0.5, 1.0])),
                parallelism=draw(st.sampled_from([1, 2, 4])),
            )
        )
    return Scenario(initial, runs)


def apply_edit(config: Config, edit: tuple[str, str, Spec | None] | None) -> Config:
    """The configuration after `edit`; edits that make no sense here are no-ops (at least
    one wallet always stays)."""
    if edit is None:
        return config
    kind, key, new = edit
    assert new is not None
    out = dict(config)
    old = out.get(key)
    if kind == "add":
        if old is None:
            out[key] = new
    elif old is None:
        pass
    elif kind == "remove":
        if len(out) > 1:
            del out[key]
    elif kind == "rename":
        out[key] = Spec(new.name, old.limit_sats, old.metadata, old.max_payment_size_sats)
    elif kind == "limit":
        limit = new.limit_sats if new.limit_sats != old.limit_sats else old.limit_sats + 7
        out[key] = Spec(old.name, limit, old.metadata, old.max_payment_size_sats)
    elif kind == "metadata":
        metadata = new.metadata if new.metadata != old.metadata else (("edited", "yes"),)
        out[key] = Spec(old.name, old.limit_sats, metadata, old.max_payment_size_sats)
    elif kind == "policies":
        size = new.max_payment_size_sats or 77
        out[key] = Spec(old.name, old.limit_sats, old.metadata, size)
    return out


def faults(**settings: Any) -> dict[str, Any]:
    """Fault settings for an explicit example: no fault unless named."""
    base: dict[str, Any] = {
        "seed": 1,
        "visibility_delay": 0.03,
        "slow_visibility_seconds": SLOW_VISIBILITY_SECONDS,
        "retry_after_ms": 20,
    }
    base.update(settings)
    return base


def rule(fault: str, method: str | None, path: str = "/wallets", times: int = 1) -> FaultRule:
    return FaultRule(fault=fault, method=method, path_contains=path, times=times)


ALPHA = Spec("Alpha 1", 1000, (("team", "ops"),))
BRAVO = Spec("Bravo 2", 2500, (), 5000)
# Hand-picked schedules that hit the hard cases on every run of the suite.
EXPLICIT = [
    # A replacement's create shows up only after the apply gave up waiting; the limit is
    # changed again and applied before the first new wallet is visible.
    Scenario(
        {"alpha": ALPHA},
        [
            RunPlan(None, faults(), True, 1.5, 1),
            RunPlan(
                ("limit", "alpha", Spec("Alpha 1", 2000)),
                faults(schedule=[rule("slow_visibility", "POST")]),
                True,
                0.2,
                1,
            ),
            RunPlan(("limit", "alpha", Spec("Alpha 1", 3000)), faults(), False, 1.5, 1),
        ],
    ),
    # A deletion is accepted, then fails; the wallet is removed again once faults clear.
    Scenario(
        {"alpha": ALPHA, "bravo": BRAVO},
        [
            RunPlan(None, faults(), True, 1.5, 2),
            RunPlan(
                ("remove", "bravo", BRAVO),
                faults(schedule=[rule("deletion_fails", "DELETE")]),
                True,
                1.5,
                2,
            ),
        ],
    ),
    # Every write's answer is lost (done, then the connection drops) or is a 500 after
    # the change was made: creates, policy updates, renames, replacements, deletes.
    Scenario(
        {"alpha": ALPHA, "bravo": BRAVO},
        [
            RunPlan(None, faults(drop_after_commit=1.0), True, 1.5, 2),
            RunPlan(
                ("rename", "alpha", Spec("Alpha renamed", 0)),
                faults(fail_after_commit=1.0),
                True,
                1.5,
                2,
            ),
            RunPlan(
                ("metadata", "bravo", Spec("Bravo 2", 0, (("team", "finance"),))),
                faults(drop_after_commit=0.5, fail_after_commit=0.5, seed=3),
                True,
                1.5,
                2,
            ),
            RunPlan(("remove", "alpha", ALPHA), faults(fail_after_commit=1.0), True, 1.5, 2),
        ],
    ),
]


@dataclass
class Figures:
    examples: int = 0
    fault_runs: int = 0
    runs_ok: int = 0
    runs_failed_plan: int = 0
    operations: Counter[str] = field(default_factory=Counter)
    checks: int = 0
    replacements: int = 0
    edits: Counter[str] = field(default_factory=Counter)
    max_live_for_one_key: int = 0
    success_checked: int = 0
    claims: int = 0

    def summary(self) -> str:
        ops = ", ".join(f"{k} {v}" for k, v in sorted(self.operations.items()))
        edits = ", ".join(f"{k} {v}" for k, v in sorted(self.edits.items()))
        return (
            f"fault property: {self.examples} examples, {self.fault_runs} runs with faults "
            f"({self.runs_ok} reported success, {self.runs_failed_plan} failed to plan), "
            f"operations: {ops}; edits: {edits}; {self.replacements} replacements planned; "
            f"{self.checks} state checks; {self.claims} 'done' claims verified; "
            f"{self.success_checked} successful runs checked "
            f"equal to the config; at most {self.max_live_for_one_key} live wallets for "
            "one key at a check point; every example converged after faults were cleared"
        )


def run_scenario(scenario: Scenario, workdir: Path, figures: Figures) -> None:
    figures.examples += 1
    config_path = workdir / "wallets.yaml"
    db_path = workdir / "emulator.db"
    config = dict(scenario.initial)
    allowance: Counter[str] = Counter({key: 1 for key in KEYS})
    with (
        EmbeddedEmulator(
            db_path, seed=DEMO_SEED, api_key=Secret(TEST_KEY), visibility_delay=0.03
        ) as emu,
        eventual_view(db_path) as eventual,
    ):
        store = emu.store
        policies_of = policies_reader(eventual)

        def check(where: str) -> None:
            # The strictest view: accepted creates count before they are visible, and
            # accepted deletes do not count until they take effect.
            snapshot = store.snapshot()
            check_no_extra(snapshot, allowance, where)
            figures.checks += 1
            live = [len(ws) for ws in live_by_key(snapshot).values()]
            figures.max_live_for_one_key = max([figures.max_live_for_one_key, *live])

        def on_plan(plan: Plan) -> None:
            for key in replacement_keys(plan):
                allowance[key] += 1
                figures.replacements += 1

        for number, step in enumerate(scenario.runs, start=1):
            before = config
            config = apply_edit(config, step.edit)
            if step.edit is not None and config != before:
                figures.edits[step.edit[0]] += 1
            write_config(config_path, config)
            if step.settle_first:
                wait_settled(store.snapshot, SLOW_VISIBILITY_SECONDS + 3)
            emu.faults.replace(Faults.from_dict(step.faults))
            figures.fault_runs += 1

            def on_result(result: OperationResult, number: int = number) -> None:
                figures.operations[f"{result.action} {result.status}"] += 1
                check(f"run {number}, after {result.key} {result.action} {result.status}")

            with engine_provider(emu.base_url, wait_timeout=step.wait_timeout) as provider:
                run = engine_apply(
                    config_path,
                    provider,
                    parallelism=step.parallelism,
                    on_plan=on_plan,
                    on_result=on_result,
                )
            check(f"after run {number}")
            if run.plan is None or run.report is None:
                figures.runs_failed_plan += 1
                continue
            future = eventual.snapshot()
            figures.claims += check_claims(
                future, run.plan, run.report, f"run {number}", policies_of
            )
            if run.ok:
                figures.runs_ok += 1
                if step.settle_first:
                    # It started from a settled world and said every change was done.
                    check_converged(future, config, f"after successful run {number}", policies_of)
                    figures.success_checked += 1

        emu.faults.clear()
        wait_settled(store.snapshot, SLOW_VISIBILITY_SECONDS + 3)
        with engine_provider(emu.base_url, wait_timeout=5.0) as provider:
            final = engine_apply(config_path, provider, on_plan=on_plan)
            assert final.ok, (final.error, final.report)
            check_converged(
                eventual.snapshot(), config, "after the faults were cleared", policies_of
            )
            snapshot = wait_settled(store.snapshot, 5.0)
            check_converged(snapshot, config, "after the faults were cleared")
            again = Engine(load_config(config_path), provider).plan()
            assert not again.has_changes, [c.to_dict() for c in again.actionable]


def test_no_fault_schedule_duplicates_or_leaves_an_extra_wallet() -> None:
    figures = Figures()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(scenario=scenarios())
    @example(scenario=EXPLICIT[0])
    @example(scenario=EXPLICIT[1])
    @example(scenario=EXPLICIT[2])
    def prop(scenario: Scenario) -> None:
        with tempfile.TemporaryDirectory(prefix="voltage-iac-faults-") as tmp:
            run_scenario(scenario, Path(tmp), figures)

    prop()
    print(figures.summary())
