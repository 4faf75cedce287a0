"""Fault injection of the emulator: each fault kind as a client sees it over HTTP,
determinism with a seed, the scripted schedule, and steering faults from outside."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from voltage_iac.emulator import EmbeddedEmulator, FaultRule, Faults

ORG = "11111111-1111-4111-8111-111111111111"
STAGING = "22222222-2222-4222-8222-222222222222"
LINE = "55555555-5555-4555-8555-555555555555"
KEY = "faults-write-key"
SEED: dict[str, Any] = {
    "organization_id": ORG,
    "api_keys": [{"key": KEY, "access": "write"}],
    "environments": [{"id": STAGING, "network": "mutinynet"}],
    "lines_of_credit": [
        {"id": LINE, "environment_id": STAGING, "network": "mutinynet", "limit": 10_000}
    ],
}
WALLETS = f"/organizations/{ORG}/wallets"
SUMMARY = f"/organizations/{ORG}/lines_of_credit/{LINE}/summary"
DELAY = 1.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def new_wallet(limit: int = 100) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "environment_id": STAGING,
        "line_of_credit_id": LINE,
        "name": "faulty",
        "network": "mutinynet",
        "limit": limit,
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(tmp_path: Path, clock: FakeClock) -> Iterator[EmbeddedEmulator]:
    faults = Faults(visibility_delay=DELAY, seed=7)
    with EmbeddedEmulator(tmp_path / "f.db", seed=SEED, faults=faults, clock=clock) as running:
        yield running


@pytest.fixture
def http(emu: EmbeddedEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.base_url, headers={"x-api-key": KEY}, timeout=10.0) as c:
        yield c


def visible(http: httpx.Client, wallet_id: str) -> bool:
    return http.get(f"{WALLETS}/{wallet_id}").status_code == 200


def test_rate_limit_answers_429_and_does_nothing(
    emu: EmbeddedEmulator, http: httpx.Client, clock: FakeClock
) -> None:
    emu.faults.update(rate_limit=1.0, retry_after_ms=1500)
    body = new_wallet()
    limited = http.post(WALLETS, json=body)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.headers["x-retry-after-ms"] == "1500"
    assert limited.json()["error"]["type"] == "rate_limited"
    assert http.get(WALLETS).status_code == 429  # reads are limited too
    emu.faults.update(rate_limit=0.0)
    clock.advance(10 * DELAY)
    assert not visible(http, body["id"])
    assert http.get(SUMMARY).json()["allocated_limit"] == 0


def test_fail_before_commit_does_not_write(
    emu: EmbeddedEmulator, http: httpx.Client, clock: FakeClock
) -> None:
    emu.faults.update(fail_before_commit=1.0)
    body = new_wallet()
    failed = http.post(WALLETS, json=body)
    assert failed.status_code == 500
    assert failed.json()["error"]["type"] == "internal_error"
    assert http.get(WALLETS).status_code == 200  # reads are not affected
    clock.advance(10 * DELAY)
    assert not visible(http, body["id"])
    emu.faults.update(fail_before_commit=0.0)
    assert http.post(WALLETS, json=body).status_code == 202  # the id is still free


def test_fail_after_commit_writes_then_answers_500(
    emu: EmbeddedEmulator, http: httpx.Client, clock: FakeClock
) -> None:
    emu.faults.update(fail_after_commit=1.0)
    body = new_wallet()
    failed = http.post(WALLETS, json=body)
    assert failed.status_code == 500
    assert failed.json()["error"]["type"] == "internal_error"
    clock.advance(DELAY)
    assert visible(http, body["id"])
    # A refused write is answered as such, not spoiled.
    again = http.post(WALLETS, json=body)
    assert again.status_code == 400 and again.json()["error"]["context"] == {"fields": ["id"]}


def test_drop_after_commit_breaks_the_response(
    emu: EmbeddedEmulator, http: httpx.Client, clock: FakeClock
) -> None:
    emu.faults.update(drop_after_commit=1.0)
    body = new_wallet()
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(WALLETS, json=body)
    assert http.get(WALLETS).status_code == 200  # the server is still fine
    clock.advance(DELAY)
    assert visible(http, body["id"])


def test_deletion_fails_later_and_keeps_the_allocation(
    emu: EmbeddedEmulator, http: httpx.Client, clock: FakeClock
) -> None:
    body = new_wallet(limit=4_000)
    http.post(WALLETS, json=body)
    clock.advance(DELAY)
    emu.faults.update(deletion_fails=1.0)
    assert http.delete(f"{WALLETS}/{body['id']}").status_code == 202
    clock.advance(DELAY)
    wallet = http.get(f"{WALLETS}/{body['id']}").json()
    assert wallet["active"] is True and wallet["deleted_at"] is None
    assert wallet["deletion_failed_at"] is not None
    assert http.get(SUMMARY).json()["allocated_limit"] == 4_000
    emu.faults.update(deletion_fails=0.0)
    assert http.delete(f"{WALLETS}/{body['id']}").status_code == 202
    clock.advance(DELAY)
    assert http.get(f"{WALLETS}/{body['id']}").json()["active"] is False
    assert http.get(SUMMARY).json()["allocated_limit"] == 0


def test_slow_visibility_delays_some_writes(
    emu: EmbeddedEmulator, http: httpx.Client, clock: FakeClock
) -> None:
    emu.faults.update(slow_visibility=1.0, slow_visibility_seconds=30.0)
    body = new_wallet()
    http.post(WALLETS, json=body)
    clock.advance(DELAY)
    assert not visible(http, body["id"])
    clock.advance(30.0)
    assert visible(http, body["id"])


def test_latency_holds_requests_together_not_one_after_another(emu: EmbeddedEmulator) -> None:
    # Four requests sent together all wait out the latency at the same time; a latency
    # that blocked the server, or a lock around it, would hold one at a time. The latency
    # is long beside the moment four requests take to arrive; the client's time-out only
    # bounds a hang.
    emu.faults.update(latency_ms=2000)

    async def four_at_once() -> list[int]:
        async with httpx.AsyncClient(
            base_url=emu.base_url, headers={"x-api-key": KEY}, timeout=30.0
        ) as client:
            answers = await asyncio.gather(*(client.get(WALLETS) for _ in range(4)))
        return [a.status_code for a in answers]

    assert asyncio.run(four_at_once()) == [200] * 4
    assert emu.app.latency_waiting_most == 4
    assert emu.app.latency_waiting == 0


def test_random_faults_are_deterministic_with_a_seed() -> None:
    def sequence(seed: int) -> list[tuple[bool, ...]]:
        faults = Faults(seed=seed, fail_before_commit=0.3, rate_limit=0.2, drop_after_commit=0.3)
        out = []
        for i in range(200):
            method = ("GET", "POST", "PATCH", "DELETE")[i % 4]
            d = faults.decide(method, "/organizations/x/wallets")
            out.append((d.rate_limited, d.fail_before_commit, d.drop_after_commit))
        return out

    first, again, other = sequence(42), sequence(42), sequence(43)
    assert first == again
    assert first != other
    assert any(f[0] for f in first) and any(f[1] for f in first) and any(f[2] for f in first)
    # Write faults never touch reads.
    assert not any(f[1] or f[2] for i, f in enumerate(first) if i % 4 == 0)


def test_same_seed_same_answers_over_http(tmp_path: Path) -> None:
    def statuses(name: str) -> list[int]:
        faults = Faults(seed=5, fail_before_commit=0.5, visibility_delay=0.0)
        with (
            EmbeddedEmulator(tmp_path / name, seed=SEED, faults=faults) as running,
            httpx.Client(base_url=running.base_url, headers={"x-api-key": KEY}) as client,
        ):
            return [client.post(WALLETS, json=new_wallet(limit=1)).status_code for _ in range(12)]

    first, second = statuses("a.db"), statuses("b.db")
    assert first == second
    assert set(first) == {202, 500}


def test_scripted_schedule_hits_the_next_matching_requests(
    emu: EmbeddedEmulator, http: httpx.Client
) -> None:
    emu.faults.add_rule("fail_before_commit", method="POST", path_contains="/wallets", times=2)
    emu.faults.add_rule("rate_limit", method="GET", path_contains="/lines_of_credit")
    assert http.get(WALLETS).status_code == 200  # not matched
    assert http.post(WALLETS, json=new_wallet()).status_code == 500
    assert http.get(SUMMARY).status_code == 429
    assert http.get(SUMMARY).status_code == 200  # that rule is used up
    assert http.post(WALLETS, json=new_wallet()).status_code == 500
    assert http.post(WALLETS, json=new_wallet()).status_code == 202
    assert emu.faults.schedule == []


def test_rules_and_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        FaultRule(fault="explode")
    with pytest.raises(ValueError, match="times"):
        FaultRule(fault="rate_limit", times=0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        Faults(rate_limit=1.5)
    faults = Faults()
    with pytest.raises(ValueError, match="unknown fault setting"):
        faults.update(chaos=1.0)
    with pytest.raises(ValueError):
        faults.update(fail_after_commit=2.0, latency_ms=10)
    assert faults.latency_ms == 0 and faults.fail_after_commit == 0.0  # nothing changed


def test_faults_steered_over_the_admin_endpoints(emu: EmbeddedEmulator, http: httpx.Client) -> None:
    with httpx.Client(base_url=emu.admin_url, timeout=10.0) as admin:
        put = admin.put("/faults", json={"rate_limit": 1.0, "visibility_delay": DELAY})
        assert put.status_code == 200 and put.json()["rate_limit"] == 1.0
        assert http.get(WALLETS).status_code == 429
        assert admin.get("/state").status_code == 200  # admin is never faulted
        assert admin.patch("/faults", json={"rate_limit": 0.0}).status_code == 200
        assert http.get(WALLETS).status_code == 200
        rule = {"fault": "fail_after_commit", "method": "POST", "times": 1}
        assert admin.post("/faults/schedule", json=rule).status_code == 200
        assert http.post(WALLETS, json=new_wallet()).status_code == 500
        assert http.post(WALLETS, json=new_wallet()).status_code == 202
        bad = admin.put("/faults", json={"rate_limit": "often"})
        assert bad.status_code == 400 and "rate_limit" in bad.json()["error"]["detail"]
        assert admin.post("/faults/schedule", json={"fault": "nope"}).status_code == 400
        assert admin.get("/faults").json()["schedule"] == []
