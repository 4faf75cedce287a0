"""Edge answers of the emulator as the contract and HTTP define them: 405 with `Allow`,
malformed JSON and duplicate keys as 400 `invalid_syntax` in the contract's envelope."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_emulator import (
    DELAY,
    ORG,
    SEED,
    WRITE_KEY,
    FakeClock,
    new_wallet,
    wallets_url,
)
from tests.test_emulator_contract import ContractChecker, contract  # noqa: F401
from voltage_iac.emulator import EmbeddedEmulator


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(tmp_path: Path, clock: FakeClock) -> Iterator[EmbeddedEmulator]:
    with EmbeddedEmulator(
        tmp_path / "emulator.db", seed=SEED, visibility_delay=DELAY, clock=clock
    ) as running:
        yield running


def _client(emu: EmbeddedEmulator, checker: ContractChecker | None = None) -> httpx.Client:
    hooks: dict[str, list[Any]] = {}
    if checker is not None:
        hooks = {"response": [lambda r: (r.read(), checker.check(r))]}
    return httpx.Client(
        base_url=emu.base_url, headers={"x-api-key": WRITE_KEY}, event_hooks=hooks, timeout=10
    )


def _allow(response: httpx.Response) -> set[str]:
    return {m.strip() for m in response.headers["allow"].split(",")}


def test_405_names_every_method_of_the_path(emu: EmbeddedEmulator) -> None:
    wallet = f"{wallets_url()}/{uuid.uuid4()}"
    with _client(emu) as http:
        put = http.put(wallet, json={})
        assert put.status_code == 405
        assert put.json()["error"]["type"] == "method_not_allowed"
        assert _allow(put) >= {"GET", "PATCH", "DELETE"}
        assert "PUT" not in _allow(put) and "POST" not in _allow(put)
        listing = http.delete(wallets_url())
        assert listing.status_code == 405 and _allow(listing) >= {"GET", "POST"}
        policies = http.post(f"{wallet}/policies", json={})
        assert policies.status_code == 405 and _allow(policies) >= {"GET", "PATCH"}
        summaries = http.post(f"/organizations/{ORG}/lines_of_credit/summaries", json={})
        assert summaries.status_code == 405 and "GET" in _allow(summaries)
        assert "POST" not in _allow(summaries)


@pytest.mark.parametrize(
    "raw",
    [
        b"{nope",
        b"",
        b'{"id": "a",}',
        b"\xff\xfe{}",
        b'{"limit": NaN}',
        b'{"limit": Infinity}',
    ],
)
def test_malformed_json_is_400_invalid_syntax(
    contract: dict[str, Any],  # noqa: F811
    emu: EmbeddedEmulator,
    raw: bytes,
) -> None:
    checker = ContractChecker(contract)
    wallet = f"{wallets_url()}/{SEED['wallets'][0]['id']}"
    headers = {"content-type": "application/json"}
    with _client(emu, checker) as http:
        for answer in (
            http.post(wallets_url(), content=raw, headers=headers),
            http.patch(wallet, content=raw, headers=headers),
            http.patch(f"{wallet}/policies", content=raw, headers=headers),
        ):
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["type"] == "invalid_syntax"


def test_duplicate_keys_are_refused_not_last_one_wins(
    contract: dict[str, Any],  # noqa: F811
    emu: EmbeddedEmulator,
    clock: FakeClock,
) -> None:
    checker = ContractChecker(contract)
    body = new_wallet()
    wallet_id = body["id"]
    # `limit` twice: a "last one wins" parser would take 100 and create the wallet.
    raw = (
        "{"
        + ", ".join(f'"{k}": {_json(v)}' for k, v in body.items() if k != "limit")
        + ', "limit": 999999999, "limit": 100}'
    ).encode()
    nested = (
        b'{"processing_fee": {"send_basis_points": 1, "send_basis_points": 2, '
        b'"receive_basis_points": 3}}'
    )
    headers = {"content-type": "application/json"}
    with _client(emu, checker) as http:
        refused = http.post(wallets_url(), content=raw, headers=headers)
        assert refused.status_code == 400
        assert refused.json()["error"]["type"] == "invalid_syntax"
        assert "limit" in refused.json()["error"]["detail"]
        clock.advance(DELAY * 5)
        assert http.get(f"{wallets_url()}/{wallet_id}").status_code == 404
        funded = f"{wallets_url()}/{SEED['wallets'][0]['id']}/policies"
        deep = http.patch(funded, content=nested, headers=headers)
        assert deep.status_code == 400 and deep.json()["error"]["type"] == "invalid_syntax"
        # The same body without the duplicate is accepted.
        assert http.post(wallets_url(), json=body).status_code == 202


def _json(value: Any) -> str:
    return json.dumps(value)


def test_empty_query_values_are_400_not_ignored(emu: EmbeddedEmulator) -> None:
    """`?environment_id=` is not "no filter": an empty string is no UUID (found by
    schemathesis' negative cases)."""
    env = SEED["environments"][0]["id"]
    with _client(emu) as http:
        for path, params in (
            (wallets_url(), {"environment_id": ""}),
            (wallets_url(), {"inactive": ""}),
            (f"/organizations/{ORG}/lines_of_credit/summaries", {"network": ""}),
            (f"/organizations/{ORG}/lines_of_credit/summaries", {"environment_ids": ""}),
            (f"/organizations/{ORG}/webhooks", {"statuses": ""}),
            (f"/organizations/{ORG}/webhooks", {"sort_key": ""}),
            (f"/organizations/{ORG}/environments/{env}/payments", {"wallet_id": ""}),
            (f"/organizations/{ORG}/environments/{env}/payments", {"limit": ""}),
        ):
            answer = http.get(path, params=params)
            assert answer.status_code == 400, (path, params)
            assert answer.json()["error"]["type"] in ("invalid_parameter", "invalid_cursor")
        assert http.get(wallets_url(), params={"environment_id": env}).status_code == 200


def test_receive_fields_are_typed_as_the_contract_says(emu: EmbeddedEmulator) -> None:
    env = SEED["environments"][0]["id"]
    wallet = SEED["wallets"][0]["id"]
    url = f"/organizations/{ORG}/environments/{env}/payments"
    base = {"wallet_id": wallet, "payment_kind": "bolt11", "amount_msats": 1_000}
    with _client(emu) as http:
        for extra in ({"description": None}, {"metadata": None}, {"currency": "AAA"}):
            answer = http.post(url, json={**base, "id": str(uuid.uuid4()), **extra})
            assert answer.status_code == 422, extra
        assert http.post(url, json={**base, "id": str(uuid.uuid4())}).status_code == 202
