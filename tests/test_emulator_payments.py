"""Receive payments in the emulator over HTTP: 202 and a client-chosen id, 409 on reuse,
generating -> receiving (with a real, signed BOLT11 invoice for the wallet's network)
-> completed | expired, or failed; processing fees; listing and paging; the receive
faults. Invoices are checked by decoding them with the `bolt11` library, and every
answer against the official contract."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bolt11
import httpx
import pytest

from tests.test_emulator_contract import ContractChecker, contract  # noqa: F401
from voltage_iac.emulator import EmbeddedEmulator, Faults

ORG = "11111111-1111-4111-8111-111111111111"
STAGING = "22222222-2222-4222-8222-222222222222"
PROD = "33333333-3333-4333-8333-333333333333"
TESTNET = "44444444-4444-4444-8444-444444444444"
LINE_STAGING = "55555555-5555-4555-8555-555555555555"
LINE_PROD = "66666666-6666-4666-8666-666666666666"
LINE_TESTNET = "88888888-8888-4888-8888-888888888888"
W_STAGING = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
W_PROD = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
W_TESTNET = "dddddddd-dddd-4ddd-8ddd-dddddddddddd"
W_FEE = "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee"
WRITE_KEY = "pay-write-key"
READ_KEY = "pay-read-key"
DELAY = 1.0
INVOICE_DELAY = 2.0


def _wallet(wallet_id: str, env: str, line: str, network: str) -> dict[str, Any]:
    return {
        "id": wallet_id,
        "environment_id": env,
        "line_of_credit_id": line,
        "name": f"wallet {wallet_id[:4]}",
        "limit": 0,
        "network": network,
    }


SEED: dict[str, Any] = {
    "organization_id": ORG,
    "api_keys": [{"key": WRITE_KEY, "access": "write"}, {"key": READ_KEY, "access": "read"}],
    "environments": [
        {"id": STAGING, "network": "mutinynet"},
        {"id": PROD, "network": "mainnet"},
        {"id": TESTNET, "network": "testnet3"},
    ],
    "lines_of_credit": [
        {"id": LINE_STAGING, "environment_id": STAGING, "network": "mutinynet", "limit": 10},
        {"id": LINE_PROD, "environment_id": PROD, "network": "mainnet", "limit": 10},
        {"id": LINE_TESTNET, "environment_id": TESTNET, "network": "testnet3", "limit": 10},
    ],
    "wallets": [
        _wallet(W_STAGING, STAGING, LINE_STAGING, "mutinynet"),
        _wallet(W_PROD, PROD, LINE_PROD, "mainnet"),
        _wallet(W_TESTNET, TESTNET, LINE_TESTNET, "testnet3"),
        _wallet(W_FEE, STAGING, LINE_STAGING, "mutinynet"),
    ],
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def checker(contract: dict[str, Any]) -> ContractChecker:  # noqa: F811
    return ContractChecker(contract)


@pytest.fixture
def emu(tmp_path: Path, clock: FakeClock, checker: ContractChecker) -> Iterator[EmbeddedEmulator]:
    faults = Faults(visibility_delay=DELAY, invoice_delay=INVOICE_DELAY, seed=3)
    with EmbeddedEmulator(tmp_path / "pay.db", seed=SEED, faults=faults, clock=clock) as e:
        with client(e, checker) as http:
            # W_FEE charges a 1.5 % receive processing fee.
            fee = {"processing_fee": {"send_basis_points": 0, "receive_basis_points": 150}}
            assert http.patch(f"/organizations/{ORG}/wallets/{W_FEE}/policies", json=fee)
        clock.advance(DELAY)
        yield e


def client(emu: EmbeddedEmulator, checker: ContractChecker, key: str = WRITE_KEY) -> httpx.Client:
    hooks = {"response": [lambda r: (r.read(), checker.check(r))]}
    return httpx.Client(
        base_url=emu.base_url, headers={"x-api-key": key}, event_hooks=hooks, timeout=10.0
    )


def payments(env: str = STAGING) -> str:
    return f"/organizations/{ORG}/environments/{env}/payments"


def receive(wallet_id: str = W_STAGING, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "wallet_id": wallet_id,
        "payment_kind": "bolt11",
        "amount": {"currency": "btc", "amount": 150_000},
        "description": "Order 123",
        "expiration": 600,
    }
    body.update(overrides)
    return body


def node_key(emu: EmbeddedEmulator) -> str:
    key = httpx.get(emu.admin_url + "/state").json()["node_public_key"]
    assert isinstance(key, str) and len(key) == 66
    return key


def settle(emu: EmbeddedEmulator, payment_id: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{emu.admin_url}/payments/{payment_id}/settle", json=body)


def test_fixed_receive_lifecycle_with_a_real_invoice(
    emu: EmbeddedEmulator, checker: ContractChecker, clock: FakeClock
) -> None:
    body = receive(metadata={"external_id": "order-123"})
    one = f"{payments()}/{body['id']}"
    with client(emu, checker) as http:
        accepted = http.post(payments(), json=body)
        assert accepted.status_code == 202 and accepted.content == b""
        assert http.get(one).status_code == 404  # eventually consistent
        clock.advance(DELAY)
        generating = http.get(one).json()
        assert generating["status"] == "generating"
        assert generating["data"]["payment_request"] is None and "bip21_uri" not in generating
        assert generating["requested_amount"] == {
            "currency": "btc",
            "amount": 150_000,
            "unit": "msats",
        }
        clock.advance(INVOICE_DELAY)
        payment = http.get(one).json()
        assert payment["status"] == "receiving" and payment["direction"] == "receive"
        assert payment["metadata"] == {"external_id": "order-123"}
        request = payment["data"]["payment_request"]
        assert payment["bip21_uri"] == "lightning:" + request
        assert request.startswith("lntbs1500n1")  # mutinynet is a signet: lntbs, 150 sats
        decoded = bolt11.decode(request)
        assert decoded.currency == "tbs" and decoded.amount_msat == 150_000
        assert decoded.description == "Order 123" and decoded.expiry == 600
        assert len(decoded.payment_hash) == 64 and decoded.payment_secret
        assert decoded.date == int(clock.now)
        assert decoded.signature is not None and decoded.signature.verify(node_key(emu))
        # Someone pays it: completed, the preimage matches the hash, the wallet is credited.
        paid = settle(emu, body["id"])
        assert paid.status_code == 200, paid.text
        done = http.get(one).json()
        assert done["status"] == "completed"
        (receipt,) = done["data"]["receipts"]
        assert receipt["type"] == "lightning"
        preimage = bytes.fromhex(receipt["data"]["preimage"])
        assert hashlib.sha256(preimage).hexdigest() == decoded.payment_hash
        wallet = http.get(f"/organizations/{ORG}/wallets/{W_STAGING}").json()
        assert wallet["balances"][0]["available"]["amount"] == 150_000
        assert settle(emu, body["id"]).status_code == 400  # not receiving any more


def test_a_tampered_invoice_does_not_verify(
    emu: EmbeddedEmulator, checker: ContractChecker, clock: FakeClock
) -> None:
    body = receive()
    with client(emu, checker) as http:
        http.post(payments(), json=body)
        clock.advance(DELAY + INVOICE_DELAY)
        request = http.get(f"{payments()}/{body['id']}").json()["data"]["payment_request"]
    decoded = bolt11.decode(request)
    other = bolt11.decode(request)
    assert other.signature is not None and decoded.signature is not None
    forged = type(decoded.signature)(
        hrp="lntbs1n",  # a different amount than the one signed
        signing_data=decoded.signature.signing_data,
        signature_data=decoded.signature.signature_data,
    )
    with pytest.raises(ValueError, match="Invalid signature"):
        forged.verify(node_key(emu))


@pytest.mark.parametrize(
    ("env", "wallet_id", "currency", "prefix"),
    [(PROD, W_PROD, "bc", "lnbc"), (TESTNET, W_TESTNET, "tb", "lntb1")],
)
def test_the_invoice_prefix_follows_the_wallet_network(
    emu: EmbeddedEmulator,
    checker: ContractChecker,
    clock: FakeClock,
    env: str,
    wallet_id: str,
    currency: str,
    prefix: str,
) -> None:
    body = receive(wallet_id, amount={"currency": "btc", "amount": 1_000})
    with client(emu, checker) as http:
        assert http.post(payments(env), json=body).status_code == 202
        clock.advance(DELAY + INVOICE_DELAY)
        request = http.get(f"{payments(env)}/{body['id']}").json()["data"]["payment_request"]
    assert request.startswith(prefix)
    decoded = bolt11.decode(request)
    assert decoded.currency == currency and decoded.amount_msat == 1_000


def test_any_amount_and_legacy_amount_msats(
    emu: EmbeddedEmulator, checker: ContractChecker, clock: FakeClock
) -> None:
    anyamount = receive(currency="btc")
    del anyamount["amount"]
    legacy = receive(amount_msats=2_500)
    del legacy["amount"]
    with client(emu, checker) as http:
        assert http.post(payments(), json=anyamount).status_code == 202
        assert http.post(payments(), json=legacy).status_code == 202
        clock.advance(DELAY + INVOICE_DELAY)
        payment = http.get(f"{payments()}/{anyamount['id']}").json()
        assert "requested_amount" not in payment
        assert bolt11.decode(payment["data"]["payment_request"]).amount_msat is None
        assert settle(emu, anyamount["id"]).status_code == 400  # needs an amount
        assert settle(emu, anyamount["id"], amount_msats=777).status_code == 200
        done = http.get(f"{payments()}/{anyamount['id']}").json()
        assert done["status"] == "completed" and done["data"]["amount"]["amount"] == 777
        old = http.get(f"{payments()}/{legacy['id']}").json()
        assert bolt11.decode(old["data"]["payment_request"]).amount_msat == 2_500


def test_expiry(emu: EmbeddedEmulator, checker: ContractChecker, clock: FakeClock) -> None:
    body = receive(expiration=60)
    with client(emu, checker) as http:
        http.post(payments(), json=body)
        clock.advance(DELAY + INVOICE_DELAY + 59)
        assert http.get(f"{payments()}/{body['id']}").json()["status"] == "receiving"
        clock.advance(1)
        assert http.get(f"{payments()}/{body['id']}").json()["status"] == "expired"
        assert settle(emu, body["id"]).status_code == 400


def test_processing_fee_on_fixed_and_refusal_on_any_amount(
    emu: EmbeddedEmulator, checker: ContractChecker, clock: FakeClock
) -> None:
    fixed = receive(W_FEE, amount={"currency": "btc", "amount": 100_001})
    anyamount = receive(W_FEE, currency="btc")
    del anyamount["amount"]
    with client(emu, checker) as http:
        http.post(payments(), json=fixed)
        http.post(payments(), json=anyamount)
        clock.advance(DELAY)
        assert http.get(f"{payments()}/{anyamount['id']}").json()["status"] == "generating"
        clock.advance(INVOICE_DELAY)
        payment = http.get(f"{payments()}/{fixed['id']}").json()
        fee = 1_501  # 1.5 % of 100 001 msats, rounded up
        assert payment["processing_fee"] == {
            "basis_points": 150,
            "amount": {"currency": "btc", "amount": fee, "unit": "msats"},
        }
        assert payment["requested_amount"]["amount"] == 100_001
        assert payment["data"]["fees"]["amount"] == fee
        invoice = bolt11.decode(payment["data"]["payment_request"])
        assert invoice.amount_msat == 100_001 + fee  # the payer owes principal + fee
        refused = http.get(f"{payments()}/{anyamount['id']}").json()
        assert refused["status"] == "failed"
        assert refused["error"]["type"] == "receive_failed"
        assert refused["error"]["code"] == "invalid_payment_amount"
        assert refused["data"]["payment_request"] is None
        settle(emu, fixed["id"])
        wallet = http.get(f"/organizations/{ORG}/wallets/{W_FEE}").json()
        assert wallet["balances"][0]["available"]["amount"] == 100_001  # the principal


def test_receive_faults(emu: EmbeddedEmulator, checker: ContractChecker, clock: FakeClock) -> None:
    slow, failing, refused, plain = (receive() for _ in range(4))
    emu.faults.update(slow_invoice_seconds=30.0)
    with client(emu, checker) as http:
        emu.faults.add_rule("slow_invoice", path_contains="/payments")
        http.post(payments(), json=slow)
        emu.faults.add_rule("receive_fails", path_contains="/payments")
        http.post(payments(), json=failing)
        emu.faults.add_rule("receive_fee_refused", path_contains="/payments")
        http.post(payments(), json=refused)
        http.post(payments(), json=plain)
        clock.advance(DELAY + INVOICE_DELAY)

        def status(body: dict[str, Any]) -> dict[str, Any]:
            return dict(http.get(f"{payments()}/{body['id']}").json())

        assert status(plain)["status"] == "receiving"
        assert status(slow)["status"] == "generating"
        assert status(failing)["status"] == "failed"
        assert status(failing)["error"]["code"] == "receive_failed"
        assert status(refused)["error"]["code"] == "invalid_payment_amount"
        clock.advance(30)
        assert status(slow)["status"] == "receiving"
        # Rates apply to receive creates only, never to other writes.
        emu.faults.update(receive_fails=1.0)
        assert (
            http.patch(
                f"/organizations/{ORG}/wallets/{W_STAGING}", json={"name": "still fine"}
            ).status_code
            == 202
        )
        http.post(payments(), json=(last := receive()))
        clock.advance(DELAY + INVOICE_DELAY)
        assert status(last)["status"] == "failed"


def test_refusals(emu: EmbeddedEmulator, checker: ContractChecker, clock: FakeClock) -> None:
    with client(emu, checker) as http:
        body = receive()
        assert http.post(payments(), json=body).status_code == 202
        again = http.post(payments(), json=body)
        assert again.status_code == 409
        assert again.json()["error"] == {
            "type": "payment_exists",
            "detail": again.json()["error"]["detail"],
            "context": {"payment_id": body["id"]},
        }
        cases: list[tuple[dict[str, Any], int, str]] = [
            (receive(id="p-1"), 422, "invalid_data"),
            (receive(payment_kind="lightning"), 422, "invalid_data"),
            (receive(amount={"currency": "btc", "amount": "1"}), 422, "invalid_data"),
            (receive(amount={"currency": "usd", "amount": 100}), 400, "invalid_currency"),
            (receive(amount={"currency": "btc", "amount": 0}), 400, "invalid_amount"),
            (receive(expiration=86_401), 400, "invalid_receive_payment"),
            (receive(description="x" * 640), 400, "invalid_receive_payment"),
            (receive(payment_kind="onchain"), 400, "invalid_payment"),
            (receive(W_PROD), 400, "environment_match_failed"),
            (receive(str(uuid.uuid4())), 400, "invalid_payment"),
            (
                {
                    "id": str(uuid.uuid4()),
                    "wallet_id": W_STAGING,
                    "currency": "btc",
                    "type": "bolt11",
                    "data": {"payment_request": "lntbs1"},
                },
                400,
                "invalid_payment",
            ),
        ]
        for request, status, error_type in cases:
            answer = http.post(payments(), json=request)
            assert (answer.status_code, answer.json()["error"]["type"]) == (status, error_type), (
                request
            )
        invalid = http.post(payments(), json=receive(expiration=0)).json()["error"]
        assert invalid["code"] == "validation_failed" and invalid["context"]["fields"] == [
            "expiration"
        ]
        missing = http.get(f"{payments()}/{uuid.uuid4()}")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "payment_not_found"
    with client(emu, checker, READ_KEY) as reader:
        assert reader.post(payments(), json=receive()).status_code == 403
        assert reader.get(payments()).status_code == 200


def test_listing_filters_and_pages(
    emu: EmbeddedEmulator, checker: ContractChecker, clock: FakeClock
) -> None:
    ids = []
    with client(emu, checker) as http:
        for index in range(5):
            body = receive(W_FEE if index == 4 else W_STAGING, metadata={"n": str(index)})
            http.post(payments(), json=body)
            ids.append(body["id"])
            clock.advance(1)
        clock.advance(DELAY + INVOICE_DELAY)
        listing = http.get(payments()).json()
        assert [p["id"] for p in listing["items"]] == list(reversed(ids))  # newest first
        assert listing["total"] == 5 and listing["has_more"] is False
        oldest = http.get(payments(), params={"sort_order": "ASC"}).json()
        assert [p["id"] for p in oldest["items"]] == ids
        wallet = http.get(payments(), params={"wallet_id": W_FEE}).json()
        assert [p["id"] for p in wallet["items"]] == [ids[4]]
        tagged = http.get(payments(), params={"metadata[n]": "2"}).json()
        assert [p["id"] for p in tagged["items"]] == [ids[2]]
        settle(emu, ids[0])
        done = http.get(payments(), params=[("statuses", "completed")]).json()
        assert [p["id"] for p in done["items"]] == [ids[0]]
        assert http.get(payments(), params={"direction": "send"}).json()["items"] == []
        # Cursor pages: no total, next_cursor until has_more is false.
        seen: list[str] = []
        params: dict[str, Any] = {"pagination": "cursor", "limit": 2, "sort_order": "ASC"}
        for _ in range(5):
            page = http.get(payments(), params=params).json()
            assert "total" not in page
            seen += [p["id"] for p in page["items"]]
            if not page["has_more"]:
                assert page["next_cursor"] is None
                break
            params = {**params, "cursor": page["next_cursor"]}
        assert seen == ids
        offset = http.get(payments(), params={"offset": 3, "limit": 1, "sort_order": "ASC"})
        assert [p["id"] for p in offset.json()["items"]] == [ids[3]]
        bad = http.get(payments(), params={"cursor": "not-ours"})
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_cursor"
        assert http.get(payments(), params={"limit": "many"}).status_code == 400
        assert http.get(payments(), params={"statuses": "lost"}).status_code == 400
        other_env = http.get(payments(PROD)).json()
        assert other_env["items"] == []
