"""Shared pieces of the reliability tests: budgets, configs, engine runs, state checks.

The reliability tests (`test_reliability_*.py`) prove that no fault schedule, kill,
concurrent run or Ctrl-C leaves a duplicate or an extra wallet, and that a re-run
converges. They check the emulator's state directly (its store, or the admin endpoint
`/_emulator/state` of a served emulator), never through the tool under test.

Budgets: every test runs a small budget by default; `VOLTAGE_IAC_SLOW=1` selects the
large budget (more examples, kills, concurrent rounds).
"""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import config_doc
from tests.served import TEST_KEY, stop_process
from voltage_iac import identity
from voltage_iac.client import VoltageClient
from voltage_iac.config import load_config
from voltage_iac.emulator.seed import (
    DEMO_LEGACY_WALLET_ID,
    DEMO_ORGANIZATION_ID,
    DEMO_STAGING_ENVIRONMENT_ID,
    DEMO_STAGING_LINE_ID,
)
from voltage_iac.emulator.store import Store
from voltage_iac.engine import ApplyEvents, ApplyOptions, ApplyReport, Engine
from voltage_iac.errors import SafetyError, VoltageIacError
from voltage_iac.plan import Action, Plan
from voltage_iac.providers.voltage import VoltageProvider
from voltage_iac.secret import Secret

CHILD_DEADLINE = 60.0
SLOW = os.environ.get("VOLTAGE_IAC_SLOW", "") == "1"
STACK = "reliability"
KEYS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")


def budget(default: int, slow: int) -> int:
    """`default` normally, `slow` with VOLTAGE_IAC_SLOW=1 (the large budget)."""
    return slow if SLOW else default


# -- configurations -----------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One wallet as a test wants it: enough to write the YAML and to check the result."""

    name: str
    limit_sats: int
    metadata: tuple[tuple[str, str], ...] = ()
    max_payment_size_sats: int | None = None

    @property
    def limit_msats(self) -> int:
        return self.limit_sats * 1000

    def yaml_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.name,
            "environment": "staging",
            "line_of_credit": "main",
            "limit": f"{self.limit_sats} sat",
        }
        if self.metadata:
            entry["metadata"] = dict(self.metadata)
        if self.max_payment_size_sats is not None:
            entry["policies"] = {"max_payment_size_sats": self.max_payment_size_sats}
        return entry


Config = dict[str, Spec]


def write_config(path: Path, config: Config) -> Path:
    doc = config_doc({k: s.yaml_entry() for k, s in sorted(config.items())}, stack=STACK)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def expected_id(key: str, generation: int) -> str:
    return identity.wallet_id(
        DEMO_ORGANIZATION_ID, DEMO_STAGING_ENVIRONMENT_ID, STACK, key, generation
    )


# -- the emulator's state, read directly ----------------------------------------------------


def owned(snapshot: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every wallet of the test's stack in an emulator snapshot (pending ones too)."""
    return [
        w
        for w in snapshot["wallets"]
        if (w.get("metadata") or {}).get(identity.LABEL_STACK) == STACK
    ]


def live_by_key(snapshot: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Owned wallets that exist and are not deleted, by key. A create that was accepted
    but is not visible yet counts, and so does a wallet whose deletion is still pending:
    this is the strictest reading of "active"."""
    out: dict[str, list[dict[str, Any]]] = {}
    for w in owned(snapshot):
        if w["active"]:
            out.setdefault(w["metadata"][identity.LABEL_KEY], []).append(w)
    return out


def check_identity(snapshot: Mapping[str, Any]) -> None:
    """Every wallet of the stack carries the deterministic id of its (key, generation),
    and nothing else was created: only the legacy wallet is unlabelled."""
    for w in snapshot["wallets"]:
        labels = w.get("metadata") or {}
        if labels.get(identity.LABEL_STACK) != STACK:
            assert w["id"] == DEMO_LEGACY_WALLET_ID, f"unexpected wallet {w}"
            continue
        key = labels[identity.LABEL_KEY]
        generation = int(labels[identity.LABEL_GENERATION])
        assert w["id"] == expected_id(key, generation), f"wallet with a foreign id: {w}"


def check_no_extra(snapshot: Mapping[str, Any], allowance: Mapping[str, int], where: str) -> None:
    """No key has more live wallets than its allowance: 1, plus one per replacement
    planned for it so far (a replacement creates the new wallet before deleting the old
    one, and a failed delete leaves the old one for the next run's `superseded` delete).
    Also the ids are deterministic, so no two live wallets can share a generation."""
    check_identity(snapshot)
    for key, wallets in live_by_key(snapshot).items():
        limit = allowance.get(key, 1)
        assert len(wallets) <= limit, (
            f"{where}: key {key} has {len(wallets)} live wallets (allowed {limit}): "
            + ", ".join(
                f"{w['id']} gen {w['metadata'][identity.LABEL_GENERATION]}" for w in wallets
            )
        )


PoliciesOf = Callable[[str], dict[str, Any]]


def policies_reader(store: Store) -> PoliciesOf:
    """Wallet id -> {policy type: value} as `store` sees it."""

    def read(wallet_id: str) -> dict[str, Any]:
        view = store.get_policies(DEMO_ORGANIZATION_ID, wallet_id)
        return {p.type: p.value for p in view.policies} if view is not None else {}

    return read


def check_converged(
    snapshot: Mapping[str, Any],
    config: Config,
    where: str,
    policies_of: PoliciesOf | None = None,
) -> None:
    """The live state equals the config: each key exactly once among active owned
    wallets, with the configured fields (policies too, given `policies_of`), and no
    other active owned wallet."""
    check_identity(snapshot)
    live = live_by_key(snapshot)
    assert set(live) == set(config), f"{where}: live keys {sorted(live)} != {sorted(config)}"
    for key, spec in config.items():
        wallets = live[key]
        assert len(wallets) == 1, f"{where}: key {key} has {len(wallets)} active wallets"
        [w] = wallets
        assert w["visible"], f"{where}: {key} is not visible yet"
        user_metadata = {
            k: v for k, v in (w["metadata"] or {}).items() if not identity.is_reserved_label(k)
        }
        got = (w["name"], w["limit"], user_metadata, w["environment_id"], w["line_of_credit_id"])
        want = (
            spec.name,
            spec.limit_msats,
            dict(spec.metadata),
            DEMO_STAGING_ENVIRONMENT_ID,
            DEMO_STAGING_LINE_ID,
        )
        assert got == want, f"{where}: {key} is {got}, config wants {want}"
        assert w["pending_changes"] == 0, f"{where}: {key} still has pending changes"
        if policies_of is not None and spec.max_payment_size_sats is not None:
            size = policies_of(w["id"]).get("max_payment_size")
            assert size == spec.max_payment_size_sats, f"{where}: {key} max payment {size}"


def check_claims(
    snapshot: Mapping[str, Any],
    plan: Plan,
    report: ApplyReport,
    where: str,
    policies_of: PoliciesOf | None = None,
) -> int:
    """Every operation the report calls done really is: a created wallet (create or
    replace) has exactly the planned fields, a renamed one the planned name, a deleted
    one is inactive, and planned policies are in place (given `policies_of`). `snapshot`
    should be the eventual view (every accepted change applied), so that nothing has to
    be waited for. Returns the number of claims checked."""
    by_id = {w["id"]: w for w in snapshot["wallets"]}
    changes = {(c.key, c.action.value): c for c in plan.actionable}
    checked = 0
    for result in report.results:
        if result.status != "done":
            continue
        checked += 1
        what = f"{where}: {result.key} {result.action} reported done"
        wallet = by_id.get(result.id or "")
        assert wallet is not None, f"{what}, but wallet {result.id} does not exist"
        if result.action == Action.DELETE.value:
            assert not wallet["active"], f"{what}, but {wallet['id']} is active"
            continue
        change = changes[(result.key, result.action)]
        want = change.desired
        assert want is not None
        assert wallet["name"] == want.name, f"{what}, but the name is {wallet['name']!r}"
        if policies_of is not None and want.policies is not None:
            size = policies_of(wallet["id"]).get("max_payment_size")
            wanted = want.policies.max_payment_size_sats
            assert size == wanted, f"{what}, but max payment size is {size}, not {wanted}"
        if result.action == Action.UPDATE.value:
            continue
        user_metadata = {
            k: v for k, v in (wallet["metadata"] or {}).items() if not identity.is_reserved_label(k)
        }
        got = (wallet["limit"], user_metadata, wallet["line_of_credit_id"], wallet["active"])
        expected = (want.limit, dict(want.metadata), want.line_of_credit_id, True)
        assert got == expected, f"{what}, but wallet {wallet['id']} is {got}, not {expected}"
    return checked


def settled(snapshot: Mapping[str, Any]) -> bool:
    return all(w["visible"] and w["pending_changes"] == 0 for w in snapshot["wallets"])


def wait_settled(snap: Callable[[], Mapping[str, Any]], timeout: float) -> Mapping[str, Any]:
    """Poll until every accepted change is visible (bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        snapshot = snap()
        if settled(snapshot):
            return snapshot
        if time.monotonic() > deadline:
            raise AssertionError(f"the emulator did not settle within {timeout}s")
        time.sleep(0.02)


def replacement_keys(plan: Plan) -> list[str]:
    return [c.key for c in plan.actionable if c.action is Action.REPLACE]


# -- the engine, in process -------------------------------------------------------------


@contextmanager
def engine_provider(
    base_url: str, *, wait_timeout: float, api_key: str = TEST_KEY
) -> Iterator[VoltageProvider]:
    """A provider on its own client, with small backoffs and poll timings so that each
    run is quick; the retry and read-before-resend rules are the production ones."""
    client = VoltageClient(
        base_url,
        Secret(api_key),
        timeout=5.0,
        backoff_base=0.01,
        backoff_cap=0.05,
        max_retry_after=0.05,
    )
    provider = VoltageProvider(
        client,
        DEMO_ORGANIZATION_ID,
        wait_timeout=wait_timeout,
        poll_initial=0.01,
        poll_max=0.05,
    )
    try:
        yield provider
    finally:
        provider.close()


@dataclass
class Run:
    """One apply run through the engine: its plan (None when planning failed), report."""

    plan: Plan | None = None
    report: ApplyReport | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.report is not None and self.report.ok

    @property
    def replaced(self) -> list[str]:
        return replacement_keys(self.plan) if self.plan is not None else []


def engine_apply(
    config_path: Path,
    provider: VoltageProvider,
    *,
    parallelism: int = 4,
    on_plan: Callable[[Plan], None] | None = None,
    on_result: Callable[[Any], None] | None = None,
) -> Run:
    """What `apply --auto-approve --allow-replace --allow-delete --force` does."""
    run = Run()
    desired = load_config(config_path)

    def planned(plan: Plan) -> None:
        run.plan = plan
        if on_plan is not None:
            on_plan(plan)

    try:
        outcome = Engine(desired, provider).apply(
            ApplyOptions(
                allow_delete=True, allow_replace=True, force=True, parallelism=parallelism
            ),
            ApplyEvents(on_plan=planned, on_result=on_result),
        )
    except SafetyError as exc:
        raise AssertionError(f"the gate refused: {exc}") from exc
    except VoltageIacError as exc:
        run.error = f"plan: {exc}"
        return run
    run.report = outcome.report
    return run


# -- a served emulator (another process) ------------------------------------------------


class Child:
    """A CLI process whose combined output is collected line by line as it comes."""

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(
            argv,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.started_at = time.monotonic()
        self.lines: list[str] = []
        self.times: list[float] = []  # seconds from the start to each line
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.times.append(time.monotonic() - self.started_at)
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate: Callable[[list[str]], bool], what: str) -> None:
        deadline = time.monotonic() + CHILD_DEADLINE
        while not predicate(list(self.lines)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never saw {what}:\n" + "\n".join(self.lines))
            time.sleep(0.01)

    def finish(self) -> tuple[int, list[str]]:
        try:
            code = self.process.wait(CHILD_DEADLINE)
        finally:
            stop_process(self.process)
        self._reader.join(10)
        return code, list(self.lines)


def cli_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "VOLTAGE_API_KEY": TEST_KEY,
        "VOLTAGE_API_URL": "",
        "NO_COLOR": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def cli_apply_argv(config_path: Path, base_url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "voltage_iac",
        "apply",
        str(config_path),
        "--auto-approve",
        "--allow-replace",
        "--allow-delete",
        "--force",
        "--api-url",
        base_url,
        *extra,
    ]


def random_spec(rng: random.Random, key: str) -> Spec:
    metadata = {}
    if rng.random() < 0.5:
        metadata["team"] = rng.choice(["ops", "finance", "growth"])
    return Spec(
        name=f"{key.title()} {rng.randrange(100)}",
        limit_sats=rng.choice([0, 1000, 2500, 10_000]),
        metadata=tuple(sorted(metadata.items())),
        max_payment_size_sats=rng.choice([None, None, 1000]),
    )


def random_edit(rng: random.Random, config: Config) -> tuple[str, Config]:
    """One random change of the configuration: rename, limit or metadata change (a
    replacement), policy change, removal or addition. Returns (what, new config)."""
    out = dict(config)
    present = sorted(out)
    absent = [k for k in KEYS if k not in out]
    kinds = ["rename", "limit", "metadata", "policies"]
    if len(present) > 1:
        kinds.append("remove")
    if absent:
        kinds.append("add")
    kind = rng.choice(kinds)
    if kind == "add":
        key = rng.choice(absent)
        out[key] = random_spec(rng, key)
        return f"add {key}", out
    key = rng.choice(present)
    old = out[key]
    if kind == "remove":
        del out[key]
    elif kind == "rename":
        out[key] = dataclasses.replace(old, name=f"{key.title()} {rng.randrange(100, 200)}")
    elif kind == "limit":
        out[key] = dataclasses.replace(old, limit_sats=old.limit_sats + rng.randrange(1, 500))
    elif kind == "metadata":
        out[key] = dataclasses.replace(old, metadata=(("edited", str(rng.randrange(1000))),))
    else:
        out[key] = dataclasses.replace(
            old, max_payment_size_sats=(old.max_payment_size_sats or 0) + rng.randrange(1, 99)
        )
    return f"{kind} {key}", out


@contextmanager
def eventual_view(db_path: Path) -> Iterator[Store]:
    """The emulator's world seen an hour later: every change accepted so far has taken
    effect (or failed). Lets a test check what an apply did without waiting for it."""
    store = Store(db_path, clock=lambda: time.time() + 3600)
    try:
        yield store
    finally:
        store.close()
