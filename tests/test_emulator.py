"""The emulator of the Voltage API: store rules (with an injected clock) and the HTTP API
served on 127.0.0.1 by `EmbeddedEmulator`, as the tool's client would meet it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from voltage_iac.emulator import DEMO_SEED, EmbeddedEmulator, SeedError, Store
from voltage_iac.emulator.command import emulator as emulator_group
from voltage_iac.emulator.errors import ApiKey, EmulatorError
from voltage_iac.emulator.seed import (
    DEMO_LEGACY_WALLET_ID,
    DEMO_ORGANIZATION_ID,
    DEMO_PRODUCTION_LINE_ID,
    DEMO_STAGING_ENVIRONMENT_ID,
    DEMO_STAGING_LINE_ID,
    validate_seed,
)
from voltage_iac.emulator.server import is_loopback, serve
from voltage_iac.emulator.store import NewWallet, RuleError

ORG = "11111111-1111-4111-8111-111111111111"
OTHER_ORG = "99999999-9999-4999-8999-999999999999"
STAGING = "22222222-2222-4222-8222-222222222222"
PROD = "33333333-3333-4333-8333-333333333333"
TESTNET = "44444444-4444-4444-8444-444444444444"
LINE_STAGING = "55555555-5555-4555-8555-555555555555"
LINE_PROD = "66666666-6666-4666-8666-666666666666"
LINE_DISABLED = "77777777-7777-4777-8777-777777777777"
LINE_TESTNET = "88888888-8888-4888-8888-888888888888"
FUNDED = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
WRITE_KEY = "test-write-key"
READ_KEY = "test-read-key"
STAGING_KEY = "test-staging-key"

SEED: dict[str, Any] = {
    "organization_id": ORG,
    "api_keys": [
        {"key": WRITE_KEY, "access": "write"},
        {"key": READ_KEY, "access": "read"},
        {"key": STAGING_KEY, "access": "write", "environment_id": STAGING},
    ],
    "environments": [
        {"id": STAGING, "name": "staging", "network": "mutinynet"},
        {"id": PROD, "name": "production", "network": "mainnet"},
        {"id": TESTNET, "name": "testnet", "network": "testnet3"},
    ],
    "lines_of_credit": [
        {"id": LINE_STAGING, "environment_id": STAGING, "network": "mutinynet", "limit": 10_000},
        {"id": LINE_PROD, "environment_id": PROD, "network": "mainnet", "limit": 500},
        {
            "id": LINE_DISABLED,
            "environment_id": STAGING,
            "network": "mutinynet",
            "limit": 10_000,
            "disabled": True,
        },
        {"id": LINE_TESTNET, "environment_id": TESTNET, "network": "testnet3", "limit": 1_000},
    ],
    "wallets": [
        {
            "id": FUNDED,
            "environment_id": STAGING,
            "line_of_credit_id": LINE_STAGING,
            "name": "Funded wallet",
            "limit": 1_000,
            "network": "mutinynet",
            "balance_msats": 5_000,
        }
    ],
}

DELAY = 1.0  # visibility delay of the fake-clock tests, in fake seconds


class FakeClock:
    """Seconds since the epoch that only move when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `predicate` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.01)


def new_wallet(**overrides: Any) -> dict[str, Any]:
    body = {
        "id": str(uuid.uuid4()),
        "environment_id": STAGING,
        "line_of_credit_id": LINE_STAGING,
        "name": "payouts",
        "network": "mutinynet",
        "limit": 100,
    }
    body.update(overrides)
    return body


# --- store unit tests ------------------------------------------------------------------


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


def test_store_creation_is_visible_only_after_the_delay(store: Store, clock: FakeClock) -> None:
    wallet_id = _create(store)
    assert store.get_wallet(ORG, wallet_id) is None
    assert wallet_id not in [w.id for w in store.list_wallets(ORG)]
    clock.advance(DELAY)
    view = store.get_wallet(ORG, wallet_id)
    assert view is not None and view.active and view.name == "payouts"
    assert wallet_id in [w.id for w in store.list_wallets(ORG)]


def test_store_allocation_is_taken_at_acceptance(store: Store, clock: FakeClock) -> None:
    before = store.line_summary(ORG, LINE_STAGING)
    assert before is not None and before.allocated_limit == 1_000  # the seeded wallet
    _create(store, limit=9_000)
    after = store.line_summary(ORG, LINE_STAGING)
    assert after is not None and after.allocated_limit == 10_000  # before it is visible
    with pytest.raises(RuleError) as caught:
        _create(store, limit=1)
    assert caught.value.error_type == "line_of_credit_cannot_allocate_wallet_limit"


def test_store_delete_releases_allocation_only_when_it_takes_effect(
    store: Store, clock: FakeClock
) -> None:
    wallet_id = _create(store, limit=4_000)
    clock.advance(DELAY)
    store.delete_wallet(ORG, wallet_id, delay=DELAY)
    summary = store.line_summary(ORG, LINE_STAGING)
    assert summary is not None and summary.allocated_limit == 5_000
    view = store.get_wallet(ORG, wallet_id)
    assert view is not None and view.active
    clock.advance(DELAY)
    view = store.get_wallet(ORG, wallet_id)
    assert view is not None and not view.active and view.deleted_at == clock.now
    summary = store.line_summary(ORG, LINE_STAGING)
    assert summary is not None and summary.allocated_limit == 1_000


def test_store_failed_deletion_keeps_wallet_and_allocation(store: Store, clock: FakeClock) -> None:
    wallet_id = _create(store, limit=4_000)
    clock.advance(DELAY)
    store.delete_wallet(ORG, wallet_id, delay=DELAY, fails=True)
    clock.advance(DELAY)
    view = store.get_wallet(ORG, wallet_id)
    assert view is not None
    assert view.active and view.deleted_at is None and view.deletion_failed_at == clock.now
    summary = store.line_summary(ORG, LINE_STAGING)
    assert summary is not None and summary.allocated_limit == 5_000
    # A later delete can still succeed.
    store.delete_wallet(ORG, wallet_id, delay=DELAY)
    clock.advance(DELAY)
    view = store.get_wallet(ORG, wallet_id)
    assert view is not None and not view.active


def test_store_ids_are_never_reused(store: Store, clock: FakeClock) -> None:
    wallet_id = _create(store)
    for _ in ("pending", "active", "deleted"):
        with pytest.raises(RuleError) as caught:
            _create(store, id=wallet_id)
        assert caught.value.status == 400
        assert caught.value.error_type == "invalid_request"
        assert caught.value.context == {"fields": ["id"]}
        clock.advance(DELAY)
        view = store.get_wallet(ORG, wallet_id)
        if view is not None and view.active and not view.delete_pending:
            store.delete_wallet(ORG, wallet_id, delay=DELAY)
            clock.advance(DELAY)


def test_store_line_rules(store: Store) -> None:
    cases = [
        ({"line_of_credit_id": LINE_DISABLED}, "line_of_credit_disabled"),
        ({"line_of_credit_id": str(uuid.uuid4())}, "line_of_credit_not_found"),
        ({"line_of_credit_id": LINE_PROD}, "line_of_credit_not_found"),  # other environment
        ({"network": "mainnet"}, "line_of_credit_network_mismatch"),
        ({"environment_id": str(uuid.uuid4())}, "invalid_request"),
    ]
    for overrides, expected in cases:
        with pytest.raises(RuleError) as caught:
            _create(store, **overrides)
        assert caught.value.error_type == expected, overrides
    with pytest.raises(RuleError) as caught:
        _create(store, line_of_credit_id=LINE_DISABLED)
    assert caught.value.context == {"line_of_credit_id": LINE_DISABLED}


def test_store_testnet3_matches_a_testnet_line(store: Store, clock: FakeClock) -> None:
    wallet_id = _create(
        store, environment_id=TESTNET, line_of_credit_id=LINE_TESTNET, network="testnet3"
    )
    clock.advance(DELAY)
    view = store.get_wallet(ORG, wallet_id)
    assert view is not None and view.response_network == "testnet"


def test_store_changes_of_a_wallet_apply_in_acceptance_order(
    store: Store, clock: FakeClock
) -> None:
    wallet_id = _create(store)
    clock.advance(DELAY)
    store.rename_wallet(ORG, wallet_id, "slow name", delay=10 * DELAY)
    store.rename_wallet(ORG, wallet_id, "fast name", delay=DELAY)
    clock.advance(DELAY)
    view = store.get_wallet(ORG, wallet_id)
    assert view is not None and view.name == "payouts"  # the later rename waits its turn
    clock.advance(10 * DELAY)
    view = store.get_wallet(ORG, wallet_id)
    assert view is not None and view.name == "fast name"


def test_store_listing_read_again_shows_every_change_since(store: Store, clock: FakeClock) -> None:
    """A listing read twice with nothing written between gives the same answer; any write,
    and any change taking effect later, shows in the next listing."""
    wallet_id = _create(store)
    clock.advance(DELAY)

    def listed() -> dict[str, tuple[str, int, bool]]:
        return {
            w.id: (w.name, w.balance_msats, w.active)
            for w in store.list_wallets(ORG, include_inactive=True)
        }

    assert listed()[wallet_id] == ("payouts", 0, True)
    assert listed() == listed()
    store.rename_wallet(ORG, wallet_id, "renamed", delay=DELAY)
    assert listed()[wallet_id][0] == "payouts"  # accepted, not yet in effect
    clock.advance(DELAY)
    assert listed()[wallet_id][0] == "renamed"
    store.set_balance(wallet_id, 5_000)
    assert listed()[wallet_id][1] == 5_000
    store.set_balance(wallet_id, 0)
    store.delete_wallet(ORG, wallet_id, delay=DELAY)
    clock.advance(DELAY)
    assert listed()[wallet_id][2] is False
    assert wallet_id not in [w.id for w in store.list_wallets(ORG)]


def test_store_listing_shows_writes_of_another_process(tmp_path: Path, clock: FakeClock) -> None:
    """Two stores on one database file (as two processes sharing it): what one writes,
    the other's next listing shows, even right after it listed."""
    path = tmp_path / "shared.db"
    with Store(path, clock=clock) as first, Store(path, clock=clock) as second:
        first.load_seed(SEED)
        before = {w.id for w in first.list_wallets(ORG)}
        wallet_id = _create(second)
        clock.advance(DELAY)
        assert {w.id for w in first.list_wallets(ORG)} == before | {wallet_id}
        second.rename_wallet(ORG, wallet_id, "renamed elsewhere", delay=0)
        names = {w.id: w.name for w in first.list_wallets(ORG)}
        assert names[wallet_id] == "renamed elsewhere"


def test_store_wallet_not_empty(store: Store) -> None:
    with pytest.raises(RuleError) as caught:
        store.delete_wallet(ORG, FUNDED, delay=DELAY)
    assert caught.value.error_type == "wallet_not_empty"
    assert caught.value.context == {"wallet_id": FUNDED}


def test_store_policies_fold(store: Store, clock: FakeClock) -> None:
    wallet_id = _create(store)
    clock.advance(DELAY)
    assert store.get_policies(ORG, wallet_id) is None
    store.update_policies(
        ORG, wallet_id, {"max_payment_size_sats": 10, "ofac_compliant": True}, delay=DELAY
    )
    assert store.get_policies(ORG, wallet_id) is None
    clock.advance(DELAY)
    first = store.get_policies(ORG, wallet_id)
    assert first is not None
    assert [(p.type, p.value) for p in first.policies] == [
        ("max_payment_size", 10),
        ("ofac_compliant", True),
    ]
    store.update_policies(
        ORG, wallet_id, {"max_payment_size_sats": 20, "ofac_compliant": False}, delay=DELAY
    )
    clock.advance(DELAY)
    second = store.get_policies(ORG, wallet_id)
    assert second is not None
    assert [(p.type, p.value) for p in second.policies] == [("max_payment_size", 20)]
    # An update keeps the policy's identity and creation time.
    assert second.policies[0].id == first.policies[0].id
    assert second.policies[0].created_at == first.policies[0].created_at
    assert second.policies[0].updated_at == clock.now
    store.update_policies(ORG, wallet_id, {"max_payment_size_sats": None}, delay=DELAY)
    clock.advance(DELAY)
    third = store.get_policies(ORG, wallet_id)
    assert third is not None and third.policies == ()
    with pytest.raises(RuleError) as caught:
        store.update_policies(ORG, wallet_id, {}, delay=DELAY)
    assert caught.value.error_type == "no_updates_provided"


def test_store_persists_across_instances(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "shared.db"
    with Store(path, clock=clock) as first:
        first.load_seed(SEED)
        wallet_id = _create(first)
    clock.advance(DELAY)
    with Store(path, clock=clock) as second:
        view = second.get_wallet(ORG, wallet_id)
        assert view is not None and view.name == "payouts"
        assert not second.is_empty()


def test_seed_validation_reports_every_problem() -> None:
    bad = {
        "organization_id": "not-a-uuid",
        "environments": [{"id": STAGING, "network": "regtest"}],
        "lines_of_credit": [
            {"id": LINE_STAGING, "environment_id": PROD, "network": "mutinynet", "limit": -1}
        ],
        "colour": "blue",
    }
    with pytest.raises(SeedError) as caught:
        validate_seed(bad)
    text = str(caught.value)
    for fragment in ("organization_id", "network", "limit", "colour", "environment_id"):
        assert fragment in text
    assert len(caught.value.problems) >= 5


def test_demo_seed_is_valid_and_has_the_documented_ids() -> None:
    seed = validate_seed(DEMO_SEED)
    assert seed["organization_id"] == "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
    networks = {e["id"]: e["network"] for e in seed["environments"]}
    assert networks == {
        "5a0c7e9e-2b1d-4f3a-9c8e-1d2e3f4a5b6c": "mutinynet",
        "7b1d8f0f-3c2e-4a4b-8d9f-2e3f4a5b6c7d": "mainnet",
    }
    limits = {line["id"]: line["limit"] for line in seed["lines_of_credit"]}
    assert limits == {DEMO_STAGING_LINE_ID: 10**12, DEMO_PRODUCTION_LINE_ID: 10**11}
    (legacy,) = seed["wallets"]
    assert legacy["id"] == "be4a2c3c-6f5b-4d7e-9ac1-5b6c7d8e9fa0"
    assert legacy["metadata"] == {"team": "finance"} and legacy["balance_msats"] == 2_500_000


# --- the HTTP API ------------------------------------------------------------------------


@pytest.fixture
def emu(tmp_path: Path, clock: FakeClock) -> Iterator[EmbeddedEmulator]:
    with EmbeddedEmulator(
        tmp_path / "emulator.db", seed=SEED, visibility_delay=DELAY, clock=clock
    ) as running:
        yield running


def client(emu: EmbeddedEmulator, key: str | None = WRITE_KEY) -> httpx.Client:
    headers = {"x-api-key": key} if key is not None else {}
    return httpx.Client(base_url=emu.base_url, headers=headers, timeout=10.0)


def wallets_url(org: str = ORG) -> str:
    return f"/organizations/{org}/wallets"


def test_create_is_accepted_then_visible_after_the_delay(
    emu: EmbeddedEmulator, clock: FakeClock
) -> None:
    body = new_wallet(metadata={"team": "ops"})
    with client(emu) as http:
        created = http.post(wallets_url(), json=body)
        assert created.status_code == 202 and created.content == b""
        assert created.headers["x-request-id"]
        missing = http.get(f"{wallets_url()}/{body['id']}")
        assert missing.status_code == 404
        assert missing.json()["error"] == {
            "type": "instance_not_found",
            "detail": missing.json()["error"]["detail"],
            "context": {"wallet_id": body["id"]},
        }
        assert body["id"] not in [w["id"] for w in http.get(wallets_url()).json()]
        clock.advance(DELAY)
        found = http.get(f"{wallets_url()}/{body['id']}")
        assert found.status_code == 200
        wallet = found.json()
        assert wallet["name"] == "payouts" and wallet["active"] is True
        assert wallet["metadata"] == {"team": "ops"} and wallet["limit"] == 100
        assert wallet["deleted_at"] is None and wallet["holds"] == []
        assert wallet["balances"][0]["total"]["amount"] == 0
        assert body["id"] in [w["id"] for w in http.get(wallets_url()).json()]


def test_real_clock_visibility_by_polling(tmp_path: Path) -> None:
    with (
        EmbeddedEmulator(tmp_path / "real.db", seed=SEED, visibility_delay=0.05) as running,
        client(running) as http,
    ):
        body = new_wallet()
        assert http.post(wallets_url(), json=body).status_code == 202
        url = f"{wallets_url()}/{body['id']}"
        wait_for(lambda: http.get(url).status_code == 200)


def test_list_hides_deleted_wallets_unless_inactive(
    emu: EmbeddedEmulator, clock: FakeClock
) -> None:
    body = new_wallet()
    with client(emu) as http:
        http.post(wallets_url(), json=body)
        clock.advance(DELAY)
        assert http.delete(f"{wallets_url()}/{body['id']}").status_code == 202
        clock.advance(DELAY)
        active = http.get(wallets_url()).json()
        assert body["id"] not in [w["id"] for w in active]
        everything = http.get(wallets_url(), params={"inactive": "true"}).json()
        deleted = next(w for w in everything if w["id"] == body["id"])
        assert deleted["active"] is False and deleted["deleted_at"] is not None
        assert FUNDED in [w["id"] for w in everything]
        only_prod = http.get(wallets_url(), params={"environment_id": PROD}).json()
        assert only_prod == []


def test_rename_is_visible_after_the_delay(emu: EmbeddedEmulator, clock: FakeClock) -> None:
    body = new_wallet()
    url = f"{wallets_url()}/{body['id']}"
    with client(emu) as http:
        http.post(wallets_url(), json=body)
        assert http.patch(url, json={"name": "renamed"}).status_code == 404  # not visible yet
        clock.advance(DELAY)
        assert http.patch(url, json={"name": "renamed"}).status_code == 202
        assert http.get(url).json()["name"] == "payouts"

        def names() -> dict[str, str]:
            return {w["id"]: w["name"] for w in http.get(wallets_url()).json()}

        assert names()[body["id"]] == names()[body["id"]] == "payouts"
        clock.advance(DELAY)
        assert http.get(url).json()["name"] == "renamed"
        assert names()[body["id"]] == "renamed"  # a listing served before is not served again
        short = http.patch(url, json={"name": "ab"})
        assert short.status_code == 400
        assert short.json()["error"]["type"] == "invalid_request"
        assert short.json()["error"]["context"] == {"fields": ["name"]}


def test_delete_is_soft_and_releases_the_allocation(
    emu: EmbeddedEmulator, clock: FakeClock
) -> None:
    body = new_wallet(limit=2_000)
    url = f"{wallets_url()}/{body['id']}"
    summary_url = f"/organizations/{ORG}/lines_of_credit/{LINE_STAGING}/summary"
    with client(emu) as http:
        http.post(wallets_url(), json=body)
        assert http.get(summary_url).json()["allocated_limit"] == 3_000
        clock.advance(DELAY)
        assert http.delete(url).status_code == 202
        assert http.get(url).json()["active"] is True
        clock.advance(DELAY)
        wallet = http.get(url).json()
        assert wallet["active"] is False and wallet["deleted_at"] is not None
        assert http.get(summary_url).json()["allocated_limit"] == 1_000
        assert http.patch(url, json={"name": "too late"}).status_code == 404
        assert http.delete(url).status_code == 404
        again = http.post(wallets_url(), json=body)
        assert again.status_code == 400
        assert again.json()["error"]["context"] == {"fields": ["id"]}


def test_funded_wallet_cannot_be_deleted(emu: EmbeddedEmulator) -> None:
    with client(emu) as http:
        refused = http.delete(f"{wallets_url()}/{FUNDED}")
    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "wallet_not_empty"
    assert refused.json()["error"]["context"] == {"wallet_id": FUNDED}


@pytest.mark.parametrize(
    ("overrides", "error_type"),
    [
        ({"limit": 9_001}, "line_of_credit_cannot_allocate_wallet_limit"),
        ({"network": "mainnet"}, "line_of_credit_network_mismatch"),
        ({"line_of_credit_id": LINE_DISABLED}, "line_of_credit_disabled"),
        ({"line_of_credit_id": str(uuid.uuid4())}, "line_of_credit_not_found"),
    ],
)
def test_line_of_credit_rules(
    emu: EmbeddedEmulator, overrides: dict[str, Any], error_type: str
) -> None:
    with client(emu) as http:
        refused = http.post(wallets_url(), json=new_wallet(**overrides))
        assert refused.status_code == 400
        assert refused.json()["error"]["type"] == error_type
        # Nothing was allocated by the refused create.
        summary = http.get(f"/organizations/{ORG}/lines_of_credit/{LINE_STAGING}/summary")
        assert summary.json()["allocated_limit"] == 1_000


def test_disabled_line_names_itself(emu: EmbeddedEmulator) -> None:
    with client(emu) as http:
        refused = http.post(wallets_url(), json=new_wallet(line_of_credit_id=LINE_DISABLED))
    assert refused.json()["error"]["context"] == {"line_of_credit_id": LINE_DISABLED}


def test_testnet3_request_is_testnet_in_responses(emu: EmbeddedEmulator, clock: FakeClock) -> None:
    body = new_wallet(environment_id=TESTNET, line_of_credit_id=LINE_TESTNET, network="testnet3")
    with client(emu) as http:
        assert http.post(wallets_url(), json=body).status_code == 202
        clock.advance(DELAY)
        assert http.get(f"{wallets_url()}/{body['id']}").json()["network"] == "testnet"


def test_reused_id_is_refused_while_pending(emu: EmbeddedEmulator) -> None:
    body = new_wallet()
    with client(emu) as http:
        assert http.post(wallets_url(), json=body).status_code == 202
        again = http.post(wallets_url(), json=body)
    assert again.status_code == 400
    assert again.json()["error"]["type"] == "invalid_request"
    assert again.json()["error"]["context"] == {"fields": ["id"]}


def test_request_shape_errors(emu: EmbeddedEmulator) -> None:
    with client(emu) as http:
        no_json = http.post(wallets_url(), content=b"{}", headers={"content-type": "text/plain"})
        assert no_json.status_code == 415
        assert no_json.json()["error"]["type"] == "missing_content_type"
        broken = http.post(
            wallets_url(), content=b"{nope", headers={"content-type": "application/json"}
        )
        assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_syntax"
        body = new_wallet()
        del body["limit"]
        assert http.post(wallets_url(), json=body).status_code == 422
        assert http.post(wallets_url(), json=new_wallet(limit="100")).status_code == 422
        assert http.post(wallets_url(), json=new_wallet(network="testnet")).status_code == 422
        assert http.post(wallets_url(), json=new_wallet(id="wallet-1")).status_code == 422
        short = http.post(wallets_url(), json=new_wallet(name="ab"))
        assert short.status_code == 400
        assert short.json()["error"] == {
            "type": "invalid_request",
            "detail": short.json()["error"]["detail"],
            "context": {"fields": ["name"]},
        }
        assert http.post(wallets_url(), json=new_wallet(name="x" * 257)).status_code == 400
        bad_path = http.get(f"{wallets_url()}/not-a-uuid")
        assert bad_path.status_code == 400
        assert bad_path.json()["error"]["type"] == "invalid_parameter"
        bad_query = http.get(wallets_url(), params={"inactive": "maybe"})
        assert bad_query.status_code == 400


def test_policies_set_remove_and_refuse(emu: EmbeddedEmulator, clock: FakeClock) -> None:
    body = new_wallet()
    url = f"{wallets_url()}/{body['id']}/policies"
    with client(emu) as http:
        http.post(wallets_url(), json=body)
        clock.advance(DELAY)
        never = http.get(url)
        assert never.status_code == 404
        assert never.json()["error"]["type"] == "wallet_policies_not_found"
        assert never.json()["error"]["context"] == {"wallet_id": body["id"]}
        template = str(uuid.uuid4())
        accepted = http.patch(
            url,
            json={
                "max_payment_size_sats": 50_000,
                "transactions_per_minute": 5,
                "send_volume_limit_sats": 1_000_000,
                "template_id": template,
                "ofac_compliant": True,
                "processing_fee": {"send_basis_points": 100, "receive_basis_points": 0},
            },
        )
        assert accepted.status_code == 202 and accepted.content == b""
        assert http.get(url).status_code == 404  # not visible yet
        clock.advance(DELAY)
        got = http.get(url).json()
        assert got["id"] == body["id"] and got["organization_id"] == ORG
        by_type = {p["type"]: p["data"] for p in got["policies"]}
        assert by_type["max_payment_size"]["max_size_sats"] == 50_000
        assert by_type["transaction_velocity"]["transactions_per_minute"] == 5
        assert by_type["send_volume_limit"]["limit_sats"] == 1_000_000
        assert by_type["reflex_approval"]["template_id"] == template
        assert "ofac_compliant" in by_type
        assert by_type["processing_fee"]["rates"] == {
            "send_basis_points": 100,
            "receive_basis_points": 0,
        }
        removed = http.patch(url, json={"template_id": None, "ofac_compliant": False})
        assert removed.status_code == 202
        clock.advance(DELAY)
        types = [p["type"] for p in http.get(url).json()["policies"]]
        assert types == [
            "max_payment_size",
            "transaction_velocity",
            "send_volume_limit",
            "processing_fee",
        ]
        empty = http.patch(url, json={})
        assert empty.status_code == 400
        assert empty.json()["error"]["type"] == "no_updates_provided"
        assert empty.json()["error"]["context"] == {"wallet_id": body["id"]}
        unknown = http.patch(url, json={"max_payment_size": 5})
        assert unknown.status_code == 422 and unknown.json()["error"]["type"] == "invalid_data"
        assert http.patch(url, json={"transactions_per_minute": 0}).status_code == 422
        fee = {"send_basis_points": 10_001, "receive_basis_points": 0}
        assert http.patch(url, json={"processing_fee": fee}).status_code == 422
        stranger = f"{wallets_url()}/{uuid.uuid4()}/policies"
        assert http.get(stranger).json()["error"]["type"] == "wallet_policies_not_found"
        assert http.patch(stranger, json={"ofac_compliant": True}).status_code == 404


def test_authentication_and_access(emu: EmbeddedEmulator, clock: FakeClock) -> None:
    with client(emu, key=None) as anonymous:
        missing = anonymous.get(wallets_url())
        assert missing.status_code == 400
        assert missing.json()["error"]["type"] == "missing_credentials"
    with client(emu, key="not-a-key") as stranger:
        wrong = stranger.get(wallets_url())
        assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "wrong_credentials"
    with client(emu, key=READ_KEY) as reader:
        assert reader.get(wallets_url()).status_code == 200
        refused = reader.post(wallets_url(), json=new_wallet())
        assert refused.status_code == 403 and refused.json()["error"]["type"] == "access_rights"
        assert reader.delete(f"{wallets_url()}/{FUNDED}").status_code == 403
        assert reader.get(wallets_url(OTHER_ORG)).status_code == 403
    with client(emu, key=STAGING_KEY) as scoped:
        prod_wallet = new_wallet(
            environment_id=PROD, line_of_credit_id=LINE_PROD, network="mainnet"
        )
        assert scoped.post(wallets_url(), json=prod_wallet).status_code == 403
        assert scoped.get(wallets_url(), params={"environment_id": PROD}).status_code == 403
        assert (
            scoped.get(f"/organizations/{ORG}/lines_of_credit/{LINE_PROD}/summary").status_code
            == 403
        )
        lines = scoped.get(f"/organizations/{ORG}/lines_of_credit/summaries").json()
        assert {line["environment_id"] for line in lines} == {STAGING}
    with client(emu) as writer:
        assert writer.post(wallets_url(), json=prod_wallet).status_code == 202
        clock.advance(DELAY)
    with client(emu, key=STAGING_KEY) as scoped:
        assert scoped.get(f"{wallets_url()}/{prod_wallet['id']}").status_code == 403
        listed = [w["id"] for w in scoped.get(wallets_url()).json()]
        assert prod_wallet["id"] not in listed and FUNDED in listed
    # The embedded emulator's own key has write access.
    with client(emu, key=emu.api_key.reveal()) as own:
        assert own.get(wallets_url()).status_code == 200


def test_line_of_credit_summaries_filters(emu: EmbeddedEmulator) -> None:
    url = f"/organizations/{ORG}/lines_of_credit/summaries"
    with client(emu) as http:
        enabled = {line["id"] for line in http.get(url).json()}
        assert enabled == {LINE_STAGING, LINE_PROD, LINE_TESTNET}
        everything = http.get(url, params={"include_disabled": "true"}).json()
        disabled = next(line for line in everything if line["id"] == LINE_DISABLED)
        assert disabled["disabled_at"] is not None
        mainnet = http.get(url, params={"network": "mainnet"}).json()
        assert [line["id"] for line in mainnet] == [LINE_PROD]
        testnet = http.get(url, params={"network": "testnet3"}).json()
        assert [(line["id"], line["network"]) for line in testnet] == [(LINE_TESTNET, "testnet")]
        repeated = http.get(url, params=[("environment_ids", PROD), ("environment_ids", TESTNET)])
        comma = http.get(url, params={"environment_ids": f"{PROD},{TESTNET}"})
        assert {line["id"] for line in repeated.json()} == {LINE_PROD, LINE_TESTNET}
        assert {line["id"] for line in comma.json()} == {LINE_PROD, LINE_TESTNET}
        assert http.get(url, params={"network": "regtest"}).status_code == 400
        missing = http.get(f"/organizations/{ORG}/lines_of_credit/{uuid.uuid4()}/summary")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "line_of_credit_not_found"


def test_state_persists_across_emulators_on_one_database(tmp_path: Path) -> None:
    path = tmp_path / "persist.db"
    body = new_wallet()
    with EmbeddedEmulator(path, seed=SEED, visibility_delay=0.0) as first, client(first) as http:
        assert http.post(wallets_url(), json=body).status_code == 202
    with EmbeddedEmulator(path, visibility_delay=0.0) as second, client(second) as http:
        wallet = http.get(f"{wallets_url()}/{body['id']}")
        assert wallet.status_code == 200 and wallet.json()["name"] == "payouts"
        # A database that already has a world is not re-seeded with the demo world.
        assert second.store.get_wallet(DEMO_ORGANIZATION_ID, DEMO_LEGACY_WALLET_ID) is None


def test_a_new_database_gets_the_demo_world(tmp_path: Path) -> None:
    with EmbeddedEmulator(tmp_path / "demo.db") as running, client(running, None) as http:
        http.headers["x-api-key"] = running.api_key.reveal()
        listed = http.get(wallets_url(DEMO_ORGANIZATION_ID)).json()
        assert [w["id"] for w in listed] == [DEMO_LEGACY_WALLET_ID]
        legacy = listed[0]
        assert legacy["name"] == "Legacy treasury" and legacy["metadata"] == {"team": "finance"}
        assert legacy["environment_id"] == DEMO_STAGING_ENVIRONMENT_ID
        assert legacy["balances"][0]["available"]["amount"] == 2_500_000
        assert running.base_url.startswith("http://127.0.0.1:")
        assert running.base_url.endswith("/v1")
        assert "***" in repr(running.api_key)


def test_admin_endpoints(emu: EmbeddedEmulator, clock: FakeClock) -> None:
    admin = httpx.Client(base_url=emu.admin_url, timeout=10.0)
    with admin, client(emu) as http:
        state = admin.get("/state").json()
        assert state["organizations"] == [ORG]
        assert FUNDED in [w["id"] for w in state["wallets"]]
        assert "key" not in str(state["api_keys"]).replace("api_keys", "")
        body = new_wallet()
        http.post(wallets_url(), json=body)
        pending = next(w for w in admin.get("/state").json()["wallets"] if w["id"] == body["id"])
        assert pending["visible"] is False
        clock.advance(DELAY)
        balance = admin.put(f"/wallets/{body['id']}/balance", json={"balance_msats": 7})
        assert balance.status_code == 200
        assert http.delete(f"{wallets_url()}/{body['id']}").json()["error"]["type"] == (
            "wallet_not_empty"
        )
        assert admin.post("/reset").status_code == 200
        assert http.get(wallets_url()).status_code == 401  # the seeded key is gone too
        assert admin.post("/seed", json=SEED).status_code == 200
        assert [w["id"] for w in http.get(wallets_url()).json()] == [FUNDED]
        refused = admin.post("/seed", json={"organization_id": "nope"})
        assert refused.status_code == 400 and "organization_id" in refused.text
        assert emu.origin + "/v1" == emu.base_url
        assert http.get("/_emulator/state").status_code == 404  # admin is not under /v1


# --- running it ----------------------------------------------------------------------------


def test_serve_refuses_non_loopback_hosts(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.8.9.10")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")
    with pytest.raises(EmulatorError, match="loopback"):
        serve("0.0.0.0", 0, tmp_path / "x.db", api_keys=[ApiKey("k")])
    assert not (tmp_path / "x.db").exists()


def test_command_seed_writes_the_database(tmp_path: Path) -> None:
    seed_file = tmp_path / "seed.yaml"
    seed_file.write_text(
        "organization_id: " + ORG + "\n"
        "environments:\n  - {id: " + STAGING + ", network: mutinynet}\n"
        "lines_of_credit:\n"
        "  - {id: " + LINE_STAGING + ", environment_id: " + STAGING + ", network: mutinynet,"
        " limit: 1000, currency: btc}\n",
        encoding="utf-8",
    )
    db = tmp_path / "cli.db"
    result = CliRunner().invoke(emulator_group, ["seed", str(seed_file), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert ORG in result.output
    with Store(db) as store:
        summary = store.line_summary(ORG, LINE_STAGING)
        assert summary is not None and summary.limit == 1000
    bad = tmp_path / "bad.yaml"
    bad.write_text("organization_id: 12\n", encoding="utf-8")
    failed = CliRunner().invoke(emulator_group, ["seed", str(bad), "--db", str(db)])
    assert isinstance(failed.exception, SeedError)


def test_command_serve_needs_the_key_variable(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        emulator_group,
        ["serve", "--db", str(tmp_path / "e.db"), "--api-key-env", "VOLTAGE_IAC_TEST_UNSET_KEY"],
        env={"VOLTAGE_IAC_TEST_UNSET_KEY": ""},
    )
    assert isinstance(result.exception, EmulatorError)
    assert "VOLTAGE_IAC_TEST_UNSET_KEY" in str(result.exception)


def test_command_serve_runs_on_loopback(tmp_path: Path) -> None:
    key = "cli-served-key"
    env = dict(os.environ, VOLTAGE_IAC_TEST_KEY=key)
    code = "from voltage_iac.emulator.command import emulator; emulator()"
    args = [sys.executable, "-c", code, "serve", "--port", "0", "--db", str(tmp_path / "s.db")]
    args += ["--api-key-env", "VOLTAGE_IAC_TEST_KEY"]
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    try:
        first_line: list[str] = []
        reader = threading.Thread(
            target=lambda: first_line.append(process.stdout.readline() if process.stdout else ""),
            daemon=True,
        )
        reader.start()
        reader.join(20.0)
        assert first_line and "listening on http://127.0.0.1:" in first_line[0], first_line
        assert key not in first_line[0]
        base_url = first_line[0].split("listening on ")[1].strip()
        with httpx.Client(base_url=base_url, headers={"x-api-key": key}, timeout=10.0) as http:
            listed = http.get(wallets_url(DEMO_ORGANIZATION_ID))
            assert listed.status_code == 200
            assert [w["id"] for w in listed.json()] == [DEMO_LEGACY_WALLET_ID]
    finally:
        process.terminate()
        try:
            process.wait(10.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10.0)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
