"""`voltage-iac verify` against the emulator served over loopback: every quick-start wallet
takes a receive invoice; the receive faults fail with the API's error type, what to do,
and exit 1; a dropped answer never makes a second receive; JUnit parses; no secret shows.
The network check is also tested on the decoder path with real invoices of other networks
made with bolt11's encoder."""

from __future__ import annotations

import json
import secrets
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bolt11
import httpx
import pytest
from bolt11.models.tags import TagChar, Tags
from click.testing import CliRunner, Result

from tests.served import TEST_KEY, ServedEmulator, served_emulator
from voltage_iac.cli import cli
from voltage_iac.emulator.seed import DEMO_ORGANIZATION_ID, DEMO_STAGING_ENVIRONMENT_ID
from voltage_iac.errors import UsageError
from voltage_iac.verify import _Failed, check_invoice, network_matches, parse_amount

REPO = Path(__file__).resolve().parents[1]
QUICKSTART_KEYS = ["payouts-eu", "payroll", "treasury"]


class Stack:
    def __init__(self, emulator: ServedEmulator, config: Path) -> None:
        self.emulator = emulator
        self.config = config
        self.api = httpx.Client(
            base_url=emulator.base_url, headers={"x-api-key": TEST_KEY}, timeout=10.0
        )

    def run(self, *argv: str) -> Result:
        env = {"NO_COLOR": "1", "VOLTAGE_API_URL": "", "VOLTAGE_API_KEY": TEST_KEY}
        args = [argv[0], str(self.config), "--api-url", self.emulator.base_url, *argv[1:]]
        result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
        assert TEST_KEY not in result.output
        assert TEST_KEY[8:] not in result.output  # no fragment either
        return result

    def faults(self, **settings: Any) -> None:
        answer = self.emulator.admin.put(self.emulator.admin_url + "/faults", json=settings)
        answer.raise_for_status()

    def schedule(self, **rule: Any) -> None:
        answer = self.emulator.admin.post(self.emulator.admin_url + "/faults/schedule", json=rule)
        answer.raise_for_status()

    def wallet_ids(self) -> dict[str, str]:
        answer = self.api.get(
            f"/organizations/{DEMO_ORGANIZATION_ID}/wallets",
            params={"environment_id": DEMO_STAGING_ENVIRONMENT_ID},
        )
        answer.raise_for_status()
        by_name = {w["name"]: w["id"] for w in answer.json() if w["active"]}
        return {"payroll": by_name["Payroll"], "treasury": by_name["Treasury"]}

    def payments_of(self, wallet_id: str) -> list[dict[str, Any]]:
        answer = self.api.get(
            f"/organizations/{DEMO_ORGANIZATION_ID}/environments/"
            f"{DEMO_STAGING_ENVIRONMENT_ID}/payments",
            params={"wallet_id": wallet_id, "limit": 100},
        )
        answer.raise_for_status()
        body = answer.json()
        return list(body["items"] if isinstance(body, dict) else body)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("verify")
    shutil.copy(REPO / "examples" / "quickstart.yaml", tmp / "quickstart.yaml")
    with served_emulator(tmp) as emulator:
        the_stack = Stack(emulator, tmp / "quickstart.yaml")
        applied = the_stack.run("apply", "--auto-approve")
        assert applied.exit_code == 0, applied.output
        try:
            yield the_stack
        finally:
            the_stack.api.close()


@pytest.fixture
def fresh(stack: Stack) -> Iterator[Stack]:
    stack.faults()  # every fault back to its default
    yield stack
    stack.faults()


def test_every_quickstart_wallet_verifies(fresh: Stack) -> None:
    result = fresh.run("verify", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["ok"] is True and doc["failed"] == 0
    assert [r["key"] for r in doc["results"]] == QUICKSTART_KEYS
    for r in doc["results"]:
        assert r["status"] == "verified"
        assert r["invoice_prefix"] == "lntbs"  # mutinynet is a signet
        assert r["invoice_msats"] == 1000  # --amount default 1sat
        assert r["network"] == "mutinynet"


def test_receives_are_marked_and_only_receives(fresh: Stack) -> None:
    wallet_id = fresh.wallet_ids()["payroll"]
    before = {p["id"] for p in fresh.payments_of(wallet_id)}
    result = fresh.run("verify", "--target", "payroll", "--amount", "2 sat")
    assert result.exit_code == 0, result.output
    assert "receive requests only, no funds move" in result.output
    new = [p for p in fresh.payments_of(wallet_id) if p["id"] not in before]
    assert len(new) == 1
    payment = new[0]
    assert payment["direction"] == "receive"
    assert payment["data"]["memo"] == "voltage-iac verify quickstart/payroll"
    assert payment["metadata"] == {"voltage_iac_verify": "quickstart/payroll"}
    assert bolt11.decode(payment["data"]["payment_request"]).amount_msat == 2000


def test_receive_fails_exits_1_naming_the_error(fresh: Stack) -> None:
    fresh.faults(receive_fails=1.0)
    result = fresh.run("verify", "--target", "payroll")
    assert result.exit_code == 1, result.output
    assert "payroll" in result.output and "FAILED" in result.output
    assert "receive_failed" in result.output
    assert "what to do:" in result.output


def test_receive_fee_refused_exits_1_naming_the_fee(fresh: Stack) -> None:
    fresh.faults(receive_fee_refused=1.0)
    result = fresh.run("verify", "--target", "payouts-eu", "--format", "json")
    assert result.exit_code == 1, result.output
    (r,) = json.loads(result.output)["results"]
    assert r["status"] == "failed"
    assert r["error_type"] == "receive_failed"
    assert "invalid_payment_amount" in r["message"]
    assert "processing_fee" in r["hint"]


def test_slow_invoice_beyond_the_timeout_fails(fresh: Stack) -> None:
    fresh.faults(slow_invoice=1.0, slow_invoice_seconds=30)
    result = fresh.run("verify", "--timeout", "1", "--target", "treasury")
    assert result.exit_code == 1, result.output
    assert "timeout" in result.output
    assert "--timeout" in result.output  # what to do


def test_dropped_answer_never_makes_a_second_receive(fresh: Stack) -> None:
    wallet_id = fresh.wallet_ids()["payroll"]
    before = len(fresh.payments_of(wallet_id))
    fresh.schedule(fault="drop_after_commit", method="POST", path_contains="/payments", times=1)
    assert fresh.emulator.admin.get(fresh.emulator.admin_url + "/faults").json()["schedule"]
    result = fresh.run("verify", "--target", "payroll")
    # the rule was played: the create's answer was cut off
    assert fresh.emulator.admin.get(fresh.emulator.admin_url + "/faults").json()["schedule"] == []
    # The receive was made although its answer was cut off: read by its id, it verifies.
    assert result.exit_code == 0, result.output
    assert len(fresh.payments_of(wallet_id)) == before + 1


def test_junit_report_parses(fresh: Stack, tmp_path: Path) -> None:
    fresh.faults(receive_fails=1.0)
    out = tmp_path / "verify.xml"
    result = fresh.run("verify", "--format", "junit", "--output", str(out))
    assert result.exit_code == 1
    suite = ET.parse(out).getroot()
    assert suite.tag == "testsuite"
    assert suite.get("tests") == "3" and suite.get("failures") == "3"
    names = [case.get("name") for case in suite.iter("testcase")]
    assert names == QUICKSTART_KEYS
    assert all(case.find("failure") is not None for case in suite.iter("testcase"))
    assert TEST_KEY not in out.read_text()


def test_apply_verify_with_nothing_to_apply_exits_0(fresh: Stack) -> None:
    result = fresh.run("apply", "--auto-approve", "--verify")
    assert result.exit_code == 0, result.output


def test_unknown_target_is_a_usage_error(fresh: Stack) -> None:
    result = fresh.run("verify", "--target", "nope")
    assert result.exit_code == 3
    assert "nope" in result.output


# -- the decoder path: real invoices of every network ---------------------------------------


def _invoice(currency: str, msats: int) -> str:
    tags = Tags()
    tags.add(TagChar.payment_hash, secrets.token_hex(32))
    tags.add(TagChar.payment_secret, secrets.token_hex(32))
    tags.add(TagChar.description, "test")
    invoice = bolt11.Bolt11(
        currency=currency, date=1_800_000_000, tags=tags, amount_msat=bolt11.MilliSatoshi(msats)
    )
    return bolt11.encode(invoice, secrets.token_hex(32))


@pytest.mark.parametrize(
    ("network", "currency"),
    [
        ("mainnet", "bc"),
        ("testnet", "tb"),
        ("testnet3", "tb"),
        ("mutinynet", "tbs"),
        ("signet", "tbs"),
    ],
)
def test_network_prefix_must_match(network: str, currency: str) -> None:
    for other in ("bc", "tb", "tbs", "bcrt"):
        assert network_matches(_invoice(other, 1000), network) is (other == currency)


def test_mainnet_invoice_for_a_mutinynet_wallet_fails_clearly() -> None:
    with pytest.raises(_Failed) as caught:
        check_invoice(_invoice("bc", 1000), network="mutinynet", requested_msats=1000)
    kind, message, hint = caught.value.args
    assert kind == "network_mismatch"
    assert "lnbc" in message and "mutinynet" in message and "lntbs" in message
    assert hint


def test_amount_must_match() -> None:
    check_invoice(_invoice("tbs", 1000), network="mutinynet", requested_msats=1000)
    with pytest.raises(_Failed, match="expected 1000 msats"):
        check_invoice(_invoice("tbs", 999), network="mutinynet", requested_msats=1000)
    # a fee the API says the payer owes on top of the principal is accepted
    check_invoice(_invoice("tbs", 1010), network="mutinynet", requested_msats=1000, owed_msats=1010)
    with pytest.raises(_Failed, match="not a valid BOLT11"):
        check_invoice("lnbc1garbage", network="mainnet", requested_msats=1000)


def test_amounts_parse() -> None:
    assert parse_amount("1sat") == 1000
    assert parse_amount("1 sat") == 1000
    assert parse_amount("1500 msat") == 1500
    for bad in ("0sat", "-1 sat", "1 doge", "sat"):
        with pytest.raises(UsageError):
            parse_amount(bad)


def test_apply_verify_verifies_what_it_created(fresh: Stack, tmp_path: Path) -> None:
    import yaml

    doc = yaml.safe_load(fresh.config.read_text(encoding="utf-8"))
    doc["stack"] = "verify-apply"
    doc["wallets"] = {"tips": {**doc["wallets"]["payroll"], "name": "Tips"}}
    config = tmp_path / "tips.yaml"
    config.write_text(yaml.safe_dump(doc), encoding="utf-8")
    other = Stack(fresh.emulator, config)
    try:
        result = other.run("apply", "--auto-approve", "--verify")
        assert result.exit_code == 0, result.output
        assert "tips" in result.output and "verified" in result.output
        assert "Verify complete: 1 verified, 0 failed" in result.output
    finally:
        other.api.close()


def test_a_backend_without_receives_is_refused() -> None:
    from tests.fakes import FakeProvider
    from voltage_iac.config import load_config
    from voltage_iac.model import LiveState
    from voltage_iac.verify import VerifyOptions, verify

    desired = load_config(REPO / "examples" / "quickstart.yaml")
    with pytest.raises(UsageError, match="cannot make receive requests"):
        verify(desired, FakeProvider(), LiveState(), VerifyOptions())
