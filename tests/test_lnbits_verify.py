"""verify on LNbits, at the provider's edge: what happens when an invoice request's answer is
lost, refused or never shows up, and what the network and amount checks say.

A real LNbits cannot be made to drop an answer after it stored the invoice, so these tests
answer through `httpx.MockTransport` with the shapes LNbits 1.6.2 sends (the same fields,
status codes and error bodies, seen on the real server; the end-to-end tests in
`tests/test_lnbits_e2e.py` run verify against a real LNbits). Invoices are real BOLT11
invoices made with bolt11's encoder.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import bolt11
import httpx
import pytest
import yaml
from bolt11.models.tags import TagChar, Tags
from click.testing import CliRunner

from voltage_iac.cli import cli
from voltage_iac.errors import EXIT_INVALID, UsageError
from voltage_iac.kinds.wallet import DesiredWallet
from voltage_iac.model import DesiredState, frozen_map
from voltage_iac.providers import registry
from voltage_iac.providers.base import Receiver
from voltage_iac.providers.lnbits import LnbitsProvider
from voltage_iac.secret import Secret
from voltage_iac.verify import VerifyOptions, VerifyReport, verify

URL = "http://lnbits.test"
STACK = "acme"
TOKEN = "tok-Qx7Vb2Lm9Pz4Rk8W"
INKEY = "inkey-5f0c9a7e3b2d4c1a9e8f7b6a5d4c3b2a"
ADMINKEY = "adminkey-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
WALLET_ID = "0e6ae6acb77c443cadfd2f7b6ab8a856"


def invoice(currency: str = "bc", msats: int = 1000) -> str:
    tags = Tags()
    tags.add(TagChar.payment_hash, secrets.token_hex(32))
    tags.add(TagChar.payment_secret, secrets.token_hex(32))
    tags.add(TagChar.description, "voltage-iac verify")
    made = bolt11.Bolt11(
        currency=currency, date=1_800_000_000, tags=tags, amount_msat=bolt11.MilliSatoshi(msats)
    )
    return bolt11.encode(made, secrets.token_hex(32))


@dataclass
class FakeLnbits:
    """The answers of an LNbits 1.6.2 server for one account with one owned wallet."""

    #: what POST /api/v1/payments does: "ok", "lost" (stored, then the answer is cut off),
    #: "lost_unstored" (cut off, nothing stored), "502" (stored, then a gateway error),
    #: "refused" (LNbits' own 520 refusal), "echo_key" (a 400 that repeats the key)
    on_create: str = "ok"
    currency: str = "bc"
    masked_keys: bool = False
    payments: list[dict[str, Any]] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)
    lookups: int = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/v1/wallet/paginated":
            assert request.headers["authorization"] == f"Bearer {TOKEN}"
            masked = "*" * 32
            wallet = {
                "id": WALLET_ID,
                "name": "Tips [iac:acme:tips]",
                "adminkey": masked if self.masked_keys else ADMINKEY,
                "inkey": masked if self.masked_keys else INKEY,
                "balance_msat": 0,
                "wallet_type": "lightning",
            }
            return httpx.Response(200, json={"data": [wallet], "total": 1})
        assert request.headers.get("x-api-key") == INKEY, "receives use the invoice key"
        assert "authorization" not in request.headers
        if path == "/api/v1/payments" and request.method == "POST":
            body = json.loads(request.content)
            self.posts.append(body)
            return self._create(request, body)
        if path == "/api/v1/payments/paginated":
            self.lookups += 1
            wanted = request.url.params.get("external_id")
            data = [p for p in self.payments if p["external_id"] == wanted]
            return httpx.Response(200, json={"data": data, "total": len(data)})
        raise AssertionError(f"unexpected {request.method} {path}")

    def _create(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if self.on_create == "refused":
            return httpx.Response(
                520,
                json={
                    "detail": "Invoice amount 20000000 sats is too high. Max allowed: "
                    "10000000 sats.",
                    "status": "failed",
                },
            )
        if self.on_create == "echo_key":
            return httpx.Response(400, json={"detail": f"bad key {INKEY}"})
        if self.on_create == "lost_unstored":
            raise httpx.ReadTimeout("timed out", request=request)
        payment = {
            "checking_id": secrets.token_hex(32),
            "wallet_id": WALLET_ID,
            "amount": body["amount"] * 1000,
            "fee": 0,
            "bolt11": invoice(self.currency, body["amount"] * 1000),
            "status": "pending",
            "memo": body["memo"],
            "extra": body["extra"],
            "external_id": body["external_id"],
        }
        self.payments.append(payment)
        if self.on_create == "lost":
            raise httpx.ReadTimeout("timed out", request=request)
        if self.on_create == "502":
            return httpx.Response(502, text="Bad Gateway")
        return httpx.Response(201, json=payment)


def desired(network: str | None = None) -> DesiredState:
    options = {"url": URL, **({"network": network} if network else {})}
    return DesiredState(
        stack=STACK,
        organization_id="",
        provider_kind="lnbits",
        provider_options=frozen_map(options),
        resources=frozen_map(
            {
                "wallet": frozen_map(
                    {"tips": DesiredWallet(key="tips", name="Tips", environment="default")}
                )
            }
        ),
    )


def run_verify(
    fake: FakeLnbits, *, network: str | None = None, amount_msats: int = 1000, timeout: float = 5
) -> VerifyReport:
    state = desired(network)
    provider = LnbitsProvider.from_environment(
        state,
        {"LNBITS_ACCESS_TOKEN": TOKEN},
        transport=httpx.MockTransport(fake.handler),
        sleep=lambda _: None,
    )
    try:
        options = VerifyOptions(
            amount_msats=amount_msats, timeout=timeout, poll_initial=0.01, poll_max=0.05
        )
        return verify(state, provider, provider.read(state), options)
    finally:
        provider.close()


def only(report: VerifyReport) -> Any:
    [result] = report.results
    assert result.key == "tips" and result.id == WALLET_ID
    return result


def test_an_invoice_is_made_once_with_the_invoice_key_and_marked() -> None:
    fake = FakeLnbits()
    report = run_verify(fake)
    result = only(report)
    assert report.ok, result
    assert (result.invoice_prefix, result.invoice_msats, result.network) == (
        "lnbc",
        1000,
        "mainnet",
    )
    [body] = fake.posts
    assert body["out"] is False and body["amount"] == 1 and body["unit"] == "sat"
    assert body["external_id"] == result.payment_id
    assert body["memo"] == f"voltage-iac verify acme/tips (verify id {result.payment_id})"
    assert body["extra"] == {
        "voltage_iac_verify": "acme/tips",
        "voltage_iac_verify_id": result.payment_id,
    }
    assert fake.lookups >= 1, "the status is read back from LNbits"


@pytest.mark.parametrize("fault", ["lost", "502"])
def test_a_lost_answer_is_resolved_by_looking_the_invoice_up(fault: str) -> None:
    fake = FakeLnbits(on_create=fault)
    report = run_verify(fake)
    assert report.ok, only(report)
    assert len(fake.posts) == 1, "the invoice request is never sent a second time"
    assert len(fake.payments) == 1


def test_a_lost_request_that_never_shows_up_is_not_sent_again() -> None:
    fake = FakeLnbits(on_create="lost_unstored")
    report = run_verify(fake, timeout=0.5)
    result = only(report)
    assert result.status == "failed" and result.error_type == "not_visible"
    assert "not sent again" in result.hint
    assert len(fake.posts) == 1
    assert fake.payments == []


def test_lnbits_refusing_the_invoice_names_its_reason_and_what_to_do() -> None:
    fake = FakeLnbits(on_create="refused")
    report = run_verify(fake)
    result = only(report)
    assert result.status == "failed" and result.error_type == "invoice_refused"
    assert "Invoice amount 20000000 sats is too high" in result.message
    assert "amount" in result.hint and "funding source" in result.hint
    assert len(fake.posts) == 1


def test_an_invoice_of_another_network_fails_naming_the_setting() -> None:
    fake = FakeLnbits(currency="bc")  # what LNbits' FakeWallet issues
    result = only(run_verify(fake, network="regtest"))
    assert result.status == "failed" and result.error_type == "network_mismatch"
    assert "lnbc" in result.message and "regtest" in result.message and "lnbcrt" in result.message
    assert "`provider.network: mainnet`" in result.hint

    regtest = FakeLnbits(currency="bcrt")
    result = only(run_verify(regtest, network="regtest"))
    assert result.status == "verified" and result.invoice_prefix == "lnbcrt"
    assert result.network == "regtest"

    testnet = FakeLnbits(currency="tb")
    assert only(run_verify(testnet, network="testnet3")).status == "verified"
    assert only(run_verify(FakeLnbits(currency="tb"))).error_type == "network_mismatch"


def test_fractions_of_a_sat_are_refused_before_anything_is_sent() -> None:
    fake = FakeLnbits()
    result = only(run_verify(fake, amount_msats=1500))
    assert result.status == "failed"
    assert "whole sats" in result.message and "--amount 1sat" in result.hint
    assert fake.posts == []


def test_a_read_only_token_cannot_verify_and_says_why() -> None:
    fake = FakeLnbits(masked_keys=True)
    result = only(run_verify(fake))
    assert result.status == "failed" and result.error_type == "AuthError"
    assert "invoice keys" in result.message and "write access" in result.hint
    assert fake.posts == []


def test_the_invoice_key_never_shows_in_results_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for fault in ("echo_key", "lost", "refused"):
        report = run_verify(FakeLnbits(on_create=fault), timeout=0.5)
        text = repr(report) + caplog.text
        for secret in (INKEY, ADMINKEY, TOKEN):
            assert secret not in text
            assert secret[6:20] not in text  # no fragment either
    # the key LNbits repeated in its error is masked, the error itself is kept
    result = only(run_verify(FakeLnbits(on_create="echo_key")))
    assert result.status == "failed" and "bad key" in result.message


# -- declarations and configuration ----------------------------------------------------------


def test_both_backends_declare_receives_and_implement_them() -> None:
    from voltage_iac.providers.voltage import VoltageProvider

    assert registry.LNBITS.receives and registry.VOLTAGE.receives
    assert issubclass(LnbitsProvider, Receiver) and issubclass(VoltageProvider, Receiver)


def test_a_backend_that_declares_no_receives_is_refused() -> None:
    import dataclasses

    provider = LnbitsProvider(
        URL, Secret(TOKEN), transport=httpx.MockTransport(FakeLnbits().handler)
    )
    provider.spec = dataclasses.replace(registry.LNBITS, receives=False)  # type: ignore[misc]
    try:
        with pytest.raises(UsageError, match="cannot make receive requests"):
            verify(desired(), provider, provider.read(desired()), VerifyOptions())
    finally:
        provider.close()


def _validate(tmp_path: Any, provider: dict[str, Any]) -> Any:
    doc: dict[str, Any] = {"version": 1, "stack": STACK, "provider": provider, "wallets": {}}
    if provider.get("kind") != "lnbits":
        doc["environments"] = {
            "staging": {"id": "123e4567-e89b-12d3-a456-426614174000", "network": "mutinynet"}
        }
    path = tmp_path / "wallets.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    env = {"VOLTAGE_ORGANIZATION_ID": "123e4567-e89b-12d3-a456-426614174001"}
    return CliRunner().invoke(cli, ["validate", str(path)], env=env, catch_exceptions=False)


@pytest.mark.parametrize(
    "network", ["mainnet", "testnet3", "testnet", "signet", "mutinynet", "regtest"]
)
def test_provider_network_is_accepted_for_lnbits(tmp_path: Any, network: str) -> None:
    result = _validate(tmp_path, {"kind": "lnbits", "url": URL, "network": network})
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("provider", "says"),
    [
        (
            {"kind": "lnbits", "url": URL, "network": "bitcoin"},
            "is not one of: mainnet, testnet3, signet, mutinynet, regtest",
        ),
        ({"network": "mainnet"}, "environments.<name>.network"),
    ],
)
def test_bad_provider_network_is_refused_at_validate(
    tmp_path: Any, provider: dict[str, Any], says: str
) -> None:
    result = _validate(tmp_path, provider)
    assert result.exit_code == EXIT_INVALID, result.output
    assert says in result.stderr
    assert "Traceback" not in result.output
