"""Running allocation totals of the emulator's lines of credit.

A wallet create checks and takes its limit from a running total per line of credit (no
fold over the line's wallets), and a delete gives it back when it takes effect. These
tests pin the totals across creates, deletes, failed deletes, replacements, seeding and
an upgrade of an older database, and compare them with a recount from the wallets."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_emulator import (
    DELAY,
    LINE_PROD,
    LINE_STAGING,
    ORG,
    PROD,
    SEED,
    STAGING,
    FakeClock,
    new_wallet,
)
from voltage_iac.emulator import Store
from voltage_iac.emulator.store import NewWallet, RuleError


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    with Store(tmp_path / "emulator.db", clock=clock) as s:
        s.load_seed(SEED)
        yield s


def _create(store: Store, **overrides: Any) -> str:
    body = new_wallet(**overrides)
    store.create_wallet(ORG, NewWallet(**body), delay=DELAY)
    return str(body["id"])


def allocated(store: Store, line_id: str = LINE_STAGING) -> int:
    summary = store.line_summary(ORG, line_id)
    assert summary is not None
    return summary.allocated_limit


def recount(store: Store, line_id: str = LINE_STAGING) -> int:
    """The allocation as the wallets themselves say it: every wallet on the line whose
    limit still counts (created, and no delete has taken effect)."""
    snapshot = store.snapshot()
    ids = [w["id"] for w in snapshot["wallets"] if w["line_of_credit_id"] == line_id]
    total = 0
    for wallet_id in ids:
        view = store._peek(ORG, wallet_id)
        assert view is not None
        if view.holds_allocation:
            total += view.limit
    # Wallets accepted but not yet visible also hold their limit.
    with sqlite3.connect(store.path) as db:
        rows = db.execute(
            "SELECT id, limit_units, visible_at FROM wallets WHERE line_of_credit_id = ?",
            (line_id,),
        ).fetchall()
    for wallet_id, units, visible_at in rows:
        if visible_at > store.now() and wallet_id not in ids:
            total += int(units)
    return total


def test_create_takes_the_limit_and_a_refused_create_takes_nothing(store: Store) -> None:
    assert allocated(store) == 1_000  # the seeded funded wallet
    _create(store, limit=4_000)
    assert allocated(store) == 5_000
    with pytest.raises(RuleError) as caught:
        _create(store, limit=5_001)
    assert caught.value.error_type == "line_of_credit_cannot_allocate_wallet_limit"
    assert allocated(store) == 5_000
    _create(store, limit=5_000)  # exactly the rest fits
    assert allocated(store) == 10_000
    assert allocated(store, LINE_PROD) == 0  # other lines untouched


def test_delete_releases_only_when_it_takes_effect(store: Store, clock: FakeClock) -> None:
    wallet_id = _create(store, limit=4_000)
    clock.advance(DELAY)
    store.delete_wallet(ORG, wallet_id, delay=DELAY)
    assert allocated(store) == 5_000  # the delete is accepted, not yet effective
    with pytest.raises(RuleError):
        _create(store, limit=6_000)  # so the limit is not free yet
    # A second delete while the first is pending changes nothing.
    store.delete_wallet(ORG, wallet_id, delay=DELAY)
    assert allocated(store) == 5_000
    clock.advance(DELAY)
    assert allocated(store) == 1_000
    assert allocated(store) == recount(store)
    _create(store, limit=9_000)
    assert allocated(store) == 10_000


def test_failed_delete_keeps_the_allocation_and_a_later_delete_frees_it(
    store: Store, clock: FakeClock
) -> None:
    wallet_id = _create(store, limit=3_000)
    clock.advance(DELAY)
    store.delete_wallet(ORG, wallet_id, delay=DELAY, fails=True)
    assert allocated(store) == 4_000
    clock.advance(DELAY)
    assert allocated(store) == 4_000
    assert allocated(store) == recount(store)
    store.delete_wallet(ORG, wallet_id, delay=DELAY)
    clock.advance(DELAY)
    assert allocated(store) == 1_000
    assert allocated(store) == recount(store)


def test_a_delete_behind_a_slow_change_releases_at_its_real_effective_time(
    store: Store, clock: FakeClock
) -> None:
    wallet_id = _create(store, limit=2_000)
    clock.advance(DELAY)
    store.rename_wallet(ORG, wallet_id, "renamed slowly", delay=10 * DELAY)
    store.delete_wallet(ORG, wallet_id, delay=DELAY)  # held back behind the rename
    clock.advance(2 * DELAY)
    assert allocated(store) == 3_000
    clock.advance(10 * DELAY)
    assert allocated(store) == 1_000
    assert allocated(store) == recount(store)


def test_replacement_frees_the_old_limit_and_takes_the_new(store: Store, clock: FakeClock) -> None:
    old = _create(store, limit=5_000)
    clock.advance(DELAY)
    assert allocated(store) == 6_000
    # Replace: delete the old wallet, create its successor with a new id and limit.
    store.delete_wallet(ORG, old, delay=DELAY)
    new = _create(store, limit=4_000)
    assert allocated(store) == 10_000  # both held until the delete takes effect
    clock.advance(DELAY)
    assert allocated(store) == 5_000
    assert allocated(store) == recount(store)
    # Replace again, into a bigger limit that only fits once the old one is released.
    store.delete_wallet(ORG, new, delay=DELAY)
    with pytest.raises(RuleError):
        _create(store, limit=9_000)
    clock.advance(DELAY)
    _create(store, limit=9_000)
    assert allocated(store) == 10_000
    assert allocated(store) == recount(store)


def test_a_mixed_history_matches_a_recount_at_every_step(store: Store, clock: FakeClock) -> None:
    created: list[str] = []
    for step in range(40):
        if step % 4 == 3 and created:
            wallet_id = created.pop(0)
            store.delete_wallet(ORG, wallet_id, delay=DELAY * (step % 3), fails=step % 8 == 7)
        else:
            try:
                created.append(_create(store, limit=37 * (step + 1)))
            except RuleError as exc:
                assert exc.error_type == "line_of_credit_cannot_allocate_wallet_limit"
        clock.advance(DELAY / 2)
        assert allocated(store) == recount(store), f"step {step}"
    clock.advance(10 * DELAY)
    assert allocated(store) == recount(store)


def test_seeding_sets_totals_and_reseeding_gives_the_same(tmp_path: Path) -> None:
    clock = FakeClock()
    seed = {
        **SEED,
        "lines_of_credit": [
            {
                "id": LINE_STAGING,
                "environment_id": STAGING,
                "network": "mutinynet",
                "limit": 10**15,
            },
            {"id": LINE_PROD, "environment_id": PROD, "network": "mainnet", "limit": 500},
        ],
        "wallets": [
            {
                "id": str(uuid.UUID(int=i + 1, version=4)),
                "environment_id": STAGING,
                "line_of_credit_id": LINE_STAGING,
                "name": f"wallet {i}",
                "limit": i,
                "network": "mutinynet",
                "active": i % 10 != 0,  # every tenth seeded as deleted
            }
            for i in range(5_000)
        ],
    }
    expected = sum(i for i in range(5_000) if i % 10 != 0)
    with Store(tmp_path / "big.db", clock=clock) as store:
        store.load_seed(seed)
        assert allocated(store) == expected
        assert len(store.list_wallets(ORG, environment_id=STAGING)) == 4_500
        assert len(store.list_wallets(ORG, environment_id=STAGING, include_inactive=True)) == 5_000
        store.load_seed(seed)
        assert allocated(store) == expected
        assert len(store.list_wallets(ORG, environment_id=STAGING)) == 4_500


def test_limits_past_sqlite_integers_are_added_exactly(tmp_path: Path) -> None:
    big = 2**64 - 1
    seed = {
        **SEED,
        "lines_of_credit": [
            {"id": LINE_STAGING, "environment_id": STAGING, "network": "mutinynet", "limit": big},
        ],
        "wallets": [],
    }
    clock = FakeClock()
    with Store(tmp_path / "u64.db", clock=clock) as store:
        store.load_seed(seed)
        _create(store, limit=big - 1)
        _create(store, limit=1)
        assert allocated(store) == big
        with pytest.raises(RuleError):
            _create(store, limit=1)


def test_a_database_of_the_previous_version_gets_its_totals(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "old.db"
    with Store(path, clock=clock) as store:
        store.load_seed(SEED)
        kept = _create(store, limit=2_000)
        gone = _create(store, limit=3_000)
        clock.advance(DELAY)
        store.delete_wallet(ORG, gone, delay=DELAY)
        failed = _create(store, limit=500)
        clock.advance(DELAY)
        store.delete_wallet(ORG, failed, delay=DELAY, fails=True)
        clock.advance(DELAY)
        store.delete_wallet(ORG, kept, delay=DELAY)  # still pending at the upgrade
    # Make it look like a database written before running totals existed.
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM allocations")
        db.execute("DELETE FROM releases")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with Store(path, clock=clock) as store:
        assert allocated(store) == 1_000 + 2_000 + 500  # the delete of `kept` is pending
        assert allocated(store) == recount(store)
        clock.advance(DELAY)
        assert allocated(store) == 1_000 + 500
        assert allocated(store) == recount(store)
        _create(store, limit=8_500)  # the released room is usable
        assert allocated(store) == 10_000
