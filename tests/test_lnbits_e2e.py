"""The real command line end to end against a real LNbits server and account.

Every test that talks to LNbits is marked `lnbits` and gets a fresh, empty account on the
session's server (`tests.lnbits_server`: 127.0.0.1 only, stopped at the end). The CLI
reads the account's token from the environment, as a user's shell would provide it
(`LNBITS_ACCESS_TOKEN`); the configuration names the server with `provider.url`.

The checks look at the account through LNbits' own API, never through voltage-iac, and
every output of the CLI is searched for the token and the wallets' admin and invoice keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner, Result

from tests.lnbits_server import LnbitsAccount
from voltage_iac.cli import cli
from voltage_iac.errors import (
    EXIT_AUTH,
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_SAFETY,
)

STACK = "acme"
WRONG_TOKEN = "wrong-token-Vb7Qm2Xc9Lp4Tz6R"  # distinctive, searched for in the output


@dataclass
class LnbitsCli:
    """The CLI pointed at one LNbits account; remembers every output for the secret check."""

    account: LnbitsAccount
    tmp: Path
    runner: CliRunner = field(default_factory=CliRunner)
    outputs: list[str] = field(default_factory=list)

    def config(
        self,
        wallets: dict[str, Any],
        *,
        stack: str = STACK,
        provider: dict[str, Any] | None = None,
        **extra: Any,
    ) -> Path:
        doc = {
            "version": 1,
            "stack": stack,
            "provider": {"kind": "lnbits", "url": self.account.url, **(provider or {})},
            "wallets": wallets,
            **extra,
        }
        path = self.tmp / f"{stack}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return path

    def run(self, *argv: str, token: str | None = None) -> Result:
        env: dict[str, str | None] = {
            "LNBITS_ACCESS_TOKEN": token if token is not None else self.account.token.reveal(),
            "LNBITS_USERNAME": None,
            "LNBITS_PASSWORD": None,
            "LNBITS_URL": None,
            "NO_COLOR": "1",
        }
        result = self.runner.invoke(cli, list(argv), env=env, catch_exceptions=False)
        self.outputs.append(result.stdout + result.stderr)
        return result

    def apply(self, path: Path, *flags: str) -> Result:
        return self.run("apply", str(path), "--auto-approve", *flags)

    # -- the account, seen through LNbits itself

    def names(self) -> dict[str, str]:
        """Wallet id -> full LNbits name, for every live wallet of the account."""
        return {w["id"]: w["name"] for w in self.account.wallets()}

    def payments(self, wallet_id: str) -> list[dict[str, Any]]:
        """Every payment of a wallet, read with its invoice key through LNbits' own API."""
        [wallet] = [w for w in self.account.wallets() if w["id"] == wallet_id]
        with httpx.Client(base_url=self.account.url, timeout=30.0) as client:
            response = client.get(
                "/api/v1/payments/paginated",
                params={"limit": 100, "offset": 0},
                headers={"X-Api-Key": wallet["inkey"]},
            )
            response.raise_for_status()
            data: list[dict[str, Any]] = response.json()["data"]
            return data

    def rename_by_hand(self, wallet_id: str, name: str) -> None:
        [wallet] = [w for w in self.account.wallets() if w["id"] == wallet_id]
        with httpx.Client(base_url=self.account.url, timeout=30.0) as client:
            response = client.patch(
                "/api/v1/wallet", json={"name": name}, headers={"X-Api-Key": wallet["adminkey"]}
            )
            response.raise_for_status()


@pytest.fixture
def lnb(lnbits_account: LnbitsAccount, tmp_path: Path) -> Iterator[LnbitsCli]:
    runner = LnbitsCli(lnbits_account, tmp_path)
    yield runner
    secrets = [lnbits_account.token.reveal(), WRONG_TOKEN]
    secrets += [w["adminkey"] for w in lnbits_account.wallets()]
    secrets += [w["inkey"] for w in lnbits_account.wallets()]
    for output in runner.outputs:
        for secret in secrets:
            assert secret not in output, "a credential appeared in the CLI's output"


def owned(lnb: LnbitsCli, stack: str = STACK) -> dict[str, str]:
    """Wallet id -> full name, for the wallets that carry a marker of `stack`."""
    return {i: n for i, n in lnb.names().items() if f" [iac:{stack}:" in n}


# -- create, no-op, formats ------------------------------------------------------------------


@pytest.mark.lnbits
def test_plan_on_an_empty_account_changes_nothing(lnb: LnbitsCli) -> None:
    empty = lnb.config({})
    for argv in (
        ("plan", str(empty)),
        ("plan", str(empty), "--detailed-exitcode"),
        ("drift", str(empty)),
        ("apply", str(empty), "--auto-approve"),
    ):
        result = lnb.run(*argv)
        assert result.exit_code == EXIT_OK, result.output
        assert "No changes." in result.stdout or argv[0] == "drift", result.output
    assert lnb.names() == {}, "reading an empty LNbits account must not create a wallet"

    path = lnb.config({"tips": {"name": "Tips"}})
    result = lnb.run("plan", str(path), "--detailed-exitcode")
    assert result.exit_code == EXIT_CHANGES, result.output
    assert "Plan: 1 to add, 0 to change, 0 to replace, 0 to destroy." in result.stdout
    assert lnb.names() == {}, "plan must not create anything"


@pytest.mark.lnbits
def test_create_then_noop_then_plan_formats(lnb: LnbitsCli) -> None:
    path = lnb.config({"tips": {"name": "Tips"}, "payroll": {"name": "Payroll"}})
    first = lnb.apply(path)
    assert first.exit_code == EXIT_OK, first.output
    assert "Plan: 2 to add, 0 to change, 0 to replace, 0 to destroy." in first.stdout
    assert "Apply complete: 2 done, 0 failed, 0 not started." in first.stdout
    assert sorted(lnb.names().values()) == [
        "Payroll [iac:acme:payroll]",
        "Tips [iac:acme:tips]",
    ]

    again = lnb.apply(path)
    assert again.exit_code == EXIT_OK, again.output
    assert "No changes." in again.stdout
    plan = lnb.run("plan", str(path), "--detailed-exitcode")
    assert plan.exit_code == EXIT_OK, plan.output
    assert "No changes." in plan.stdout
    assert len(lnb.names()) == 2

    as_json = lnb.run("plan", str(path), "--format", "json")
    assert as_json.exit_code == EXIT_OK, as_json.output
    doc = json.loads(as_json.stdout)
    assert doc["provider"] == "lnbits"
    assert doc["summary"]["create"] == 0 and doc["changes"] == []

    changed = lnb.config({"tips": {"name": "Tips Jar"}, "payroll": {"name": "Payroll"}})
    as_json = lnb.run("plan", str(changed), "--format", "json", "--detailed-exitcode")
    assert as_json.exit_code == EXIT_CHANGES, as_json.output
    doc = json.loads(as_json.stdout)
    [change] = doc["changes"]
    assert change["key"] == "tips" and change["action"] == "update"
    tips_id = next(i for i, n in lnb.names().items() if n.startswith("Tips "))
    assert change["id"] == tips_id

    markdown = lnb.run("plan", str(changed), "--format", "markdown")
    assert markdown.exit_code == EXIT_OK, markdown.output
    assert "### voltage-iac plan" in markdown.stdout
    assert "**Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy.**" in markdown.stdout
    assert "tips" in markdown.stdout and "Tips Jar" in markdown.stdout
    assert lnb.names()[tips_id] == "Tips [iac:acme:tips]", "plan changed nothing"


# -- rename, delete, protect -----------------------------------------------------------------


@pytest.mark.lnbits
def test_rename_in_place_keeps_the_wallet_and_its_marker(lnb: LnbitsCli) -> None:
    assert lnb.apply(lnb.config({"tips": {"name": "Tips"}})).exit_code == EXIT_OK
    [(wallet_id, name)] = lnb.names().items()
    assert name == "Tips [iac:acme:tips]"

    result = lnb.apply(lnb.config({"tips": {"name": "Tips Jar"}}))
    assert result.exit_code == EXIT_OK, result.output
    assert '~ name = "Tips" -> "Tips Jar"' in result.stdout
    assert "0 to add, 1 to change, 0 to replace, 0 to destroy" in result.stdout
    assert lnb.names() == {wallet_id: "Tips Jar [iac:acme:tips]"}
    again = lnb.run("plan", str(lnb.config({"tips": {"name": "Tips Jar"}})), "--detailed-exitcode")
    assert again.exit_code == EXIT_OK, again.output


@pytest.mark.lnbits
def test_delete_refused_then_allowed(lnb: LnbitsCli) -> None:
    both = lnb.config({"tips": {"name": "Tips"}, "payroll": {"name": "Payroll"}})
    assert lnb.apply(both).exit_code == EXIT_OK
    payroll_id = next(i for i, n in lnb.names().items() if n.startswith("Payroll "))

    one = lnb.config({"tips": {"name": "Tips"}})
    refused = lnb.apply(one)
    assert refused.exit_code == EXIT_SAFETY, refused.output
    assert "--allow-delete" in refused.stderr
    assert payroll_id in lnb.names(), "a refused apply deletes nothing"

    allowed = lnb.apply(one, "--allow-delete")
    assert allowed.exit_code == EXIT_OK, allowed.output
    assert "0 to add, 0 to change, 0 to replace, 1 to destroy" in allowed.stdout
    assert sorted(lnb.names().values()) == ["Tips [iac:acme:tips]"]
    assert payroll_id not in lnb.names()
    assert lnb.run("plan", str(one), "--detailed-exitcode").exit_code == EXIT_OK


@pytest.mark.lnbits
def test_protected_wallet_survives_applies_with_allow_delete(lnb: LnbitsCli) -> None:
    path = lnb.config({"vault": {"name": "Vault", "protect": True}, "tips": {"name": "Tips"}})
    assert lnb.apply(path).exit_code == EXIT_OK
    vault_id = next(i for i, n in lnb.names().items() if n.startswith("Vault "))

    # Renaming a protected wallet is an in-place change and allowed; deleting another
    # wallet in the same apply never touches it.
    path = lnb.config({"vault": {"name": "Vault Main", "protect": True}})
    plan = lnb.run("plan", str(path), "--format", "json")
    changes = {c["key"]: c for c in json.loads(plan.stdout)["changes"]}
    assert changes["vault"]["action"] == "update" and changes["vault"]["protected"] is True
    assert changes["tips"]["action"] == "delete"
    result = lnb.apply(path, "--allow-delete", "--allow-replace", "--force")
    assert result.exit_code == EXIT_OK, result.output
    assert lnb.names() == {vault_id: "Vault Main [iac:acme:vault:protected]"}

    # Protection is kept in the marker: removing the entry does not remove it, and
    # --allow-delete alone does not delete it.
    gone = lnb.apply(lnb.config({}), "--allow-delete", "--force")
    assert gone.exit_code == EXIT_SAFETY, gone.output
    assert "is protected" in gone.stderr and "--unprotect vault" in gone.stderr
    assert lnb.names() == {vault_id: "Vault Main [iac:acme:vault:protected]"}
    lifted = lnb.apply(lnb.config({}), "--allow-delete", "--unprotect", "vault")
    assert lifted.exit_code == EXIT_OK, lifted.output
    assert lnb.names() == {}


# -- wallets that are not ours ---------------------------------------------------------------


@pytest.mark.lnbits
def test_unmanaged_wallets_are_listed_and_never_touched(lnb: LnbitsCli) -> None:
    by_hand = lnb.account.create_wallet("Petty Cash")
    other_stack = lnb.account.create_wallet("Shop [iac:other:tips]")
    forged = lnb.account.create_wallet("Tips [iac:acme:tips")  # malformed marker
    before = lnb.names()

    path = lnb.config({"tips": {"name": "Tips"}})
    plan = lnb.run("plan", str(path), "--format", "json")
    assert plan.exit_code == EXIT_OK, plan.output
    doc = json.loads(plan.stdout)
    listed = {w["id"] for w in doc["unmanaged"]}
    assert listed == {by_hand["id"], other_stack["id"], forged["id"]}
    text = lnb.run("plan", str(path))
    assert "Petty Cash" in text.stdout and "unmanaged" in text.stdout.lower()

    result = lnb.apply(path, "--allow-delete")
    assert result.exit_code == EXIT_OK, result.output
    after = lnb.names()
    assert {i: after[i] for i in before} == before, "unmanaged wallets keep their names"
    assert len(after) == len(before) + 1

    # An empty configuration still never deletes them.
    empty = lnb.apply(lnb.config({}), "--allow-delete")
    assert empty.exit_code == EXIT_OK, empty.output
    assert lnb.names() == before


# -- credentials -----------------------------------------------------------------------------


@pytest.mark.lnbits
def test_wrong_token_exits_4_without_showing_it(lnb: LnbitsCli) -> None:
    path = lnb.config({"tips": {"name": "Tips"}})
    for command in ("plan", "apply", "drift"):
        argv = [command, str(path)] + (["--auto-approve"] if command == "apply" else [])
        result = lnb.run(*argv, token=WRONG_TOKEN)
        assert result.exit_code == EXIT_AUTH, result.output
        assert WRONG_TOKEN not in result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr
    assert lnb.names() == {}
    missing = lnb.run("plan", str(path), token="")
    assert missing.exit_code == EXIT_AUTH, missing.output
    assert "LNBITS_ACCESS_TOKEN" in missing.stderr


# -- drift -----------------------------------------------------------------------------------


@pytest.mark.lnbits
def test_drift_in_sync_then_after_a_rename_in_lnbits(lnb: LnbitsCli) -> None:
    path = lnb.config({"tips": {"name": "Tips"}})
    assert lnb.apply(path).exit_code == EXIT_OK
    in_sync = lnb.run("drift", str(path))
    assert in_sync.exit_code == EXIT_OK, in_sync.output

    [wallet_id] = lnb.names()
    lnb.rename_by_hand(wallet_id, "Tip Jar [iac:acme:tips]")
    drift = lnb.run("drift", str(path), "--format", "json")
    assert drift.exit_code == EXIT_CHANGES, drift.output
    assert "tips" in drift.stdout and "Tip Jar" in drift.stdout
    assert lnb.names() == {wallet_id: "Tip Jar [iac:acme:tips]"}, "drift changes nothing"

    assert lnb.apply(path).exit_code == EXIT_OK
    assert lnb.names() == {wallet_id: "Tips [iac:acme:tips]"}
    assert lnb.run("drift", str(path)).exit_code == EXIT_OK


@pytest.mark.lnbits
def test_drift_reports_a_wallet_made_by_hand_unless_ignored(lnb: LnbitsCli) -> None:
    path = lnb.config({"tips": {"name": "Tips"}})
    assert lnb.apply(path).exit_code == EXIT_OK
    by_hand = lnb.account.create_wallet("LNbits wallet")

    # Reported, but not drift unless asked: a nightly job does not fail on it.
    drift = lnb.run("drift", str(path), "--format", "json")
    assert drift.exit_code == EXIT_OK, drift.output
    [notice] = json.loads(drift.stdout)["notices"]
    assert (notice["id"], notice["finding"]) == (by_hand["id"], "unmanaged")
    strict = lnb.run("drift", str(path), "--format", "json", "--unmanaged", "fail")
    assert strict.exit_code == EXIT_CHANGES, strict.output
    assert by_hand["id"] in strict.stdout and "unmanaged" in strict.stdout

    ignoring = lnb.config({"tips": {"name": "Tips"}}, ignore=["LNbits wallet:unmanaged"])
    quiet = lnb.run("drift", str(ignoring), "--unmanaged", "fail")
    assert quiet.exit_code == EXIT_OK, quiet.output
    assert by_hand["id"] in lnb.names(), "drift changes nothing"


# -- configuration refused before LNbits is contacted ----------------------------------------


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("limit", "1000 sat"),
        ("line_of_credit", "main"),
        ("policies", {"max_payment_size_sats": 1000}),
        ("metadata", {"team": "tips"}),
        ("environment", "staging"),
        ("id", "123e4567-e89b-12d3-a456-426614174000"),
    ],
)
def test_fields_lnbits_lacks_are_refused_at_validate(
    tmp_path: Path, field_name: str, value: Any
) -> None:
    doc = {
        "version": 1,
        "stack": STACK,
        "provider": {"kind": "lnbits", "url": "http://127.0.0.1:9"},
        "wallets": {"tips": {"name": "Tips", field_name: value}},
    }
    path = tmp_path / "wallets.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(path)], catch_exceptions=False)
    assert result.exit_code == EXIT_INVALID, result.output
    assert f"`{field_name}` is not supported by the lnbits provider" in result.stderr
    assert "wallets.yaml:" in result.stderr and "fix:" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.lnbits
def test_a_name_with_a_marker_is_refused_at_plan(lnb: LnbitsCli) -> None:
    path = lnb.config({"tips": {"name": "Tips [iac:acme:payroll]"}})
    for argv in (("validate", str(path)), ("plan", str(path))):
        result = lnb.run(*argv)
        assert result.exit_code == EXIT_INVALID, result.output
        assert "contains `[iac:`" in result.stderr
    assert lnb.apply(path).exit_code == EXIT_INVALID
    assert lnb.names() == {}


# -- verify: receive invoices only, checked against the server's network --------------------


def _by_key(lnb: LnbitsCli) -> dict[str, str]:
    """Entry key -> wallet id, for this stack's wallets."""
    return {n.split(":")[-1].rstrip("]"): i for i, n in owned(lnb).items()}


@pytest.mark.lnbits
def test_verify_of_applied_wallets_makes_one_marked_invoice_each(lnb: LnbitsCli) -> None:
    path = lnb.config({"tips": {"name": "Tips"}, "payroll": {"name": "Payroll"}})
    assert lnb.apply(path).exit_code == EXIT_OK
    by_hand = lnb.account.create_wallet("Hand made")["id"]

    result = lnb.run("verify", str(path), "--format", "json")
    assert result.exit_code == EXIT_OK, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["backend"] == f"LNbits at {lnb.account.url}"
    assert [r["key"] for r in doc["results"]] == ["payroll", "tips"]
    ids = _by_key(lnb)
    for r in doc["results"]:
        assert r["status"] == "verified", r
        assert r["id"] == ids[r["key"]]
        # LNbits' FakeWallet issues mainnet invoices; provider.network defaults to mainnet
        assert (r["invoice_prefix"], r["invoice_msats"], r["network"]) == (
            "lnbc",
            1000,
            "mainnet",
        )
        [payment] = lnb.payments(r["id"])  # one invoice, read back through LNbits itself
        assert payment["amount"] == 1000 and payment["status"] == "pending"
        assert (
            payment["memo"] == f"voltage-iac verify acme/{r['key']} (verify id {r['payment_id']})"
        )
        assert payment["external_id"] == r["payment_id"]
        assert payment["extra"]["voltage_iac_verify"] == f"acme/{r['key']}"
    assert lnb.payments(by_hand) == [], "a wallet the stack does not manage is never asked"
    assert all(w["balance_msat"] == 0 for w in lnb.account.wallets()), "no funds moved"

    text = lnb.run("verify", str(path), "--target", "tips")
    assert text.exit_code == EXIT_OK, text.output
    assert "receive requests only, no funds move" in text.stdout
    assert "verified  lnbc invoice, 1000 msats, network mainnet" in text.stdout
    assert "Verify complete: 1 verified, 0 failed" in text.stdout
    assert len(lnb.payments(ids["tips"])) == 2 and len(lnb.payments(ids["payroll"])) == 1


@pytest.mark.lnbits
def test_verify_junit_report_on_lnbits(lnb: LnbitsCli, tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    path = lnb.config({"tips": {"name": "Tips"}, "payroll": {"name": "Payroll"}})
    assert lnb.apply(path).exit_code == EXIT_OK
    out = tmp_path / "verify.xml"
    result = lnb.run("verify", str(path), "--format", "junit", "--output", str(out))
    assert result.exit_code == EXIT_OK, result.output
    assert "Verify complete: 2 verified, 0 failed" in result.stderr
    suite = ET.parse(out).getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "0"
    assert [c.get("name") for c in suite.iter("testcase")] == ["payroll", "tips"]
    lnb.outputs.append(out.read_text(encoding="utf-8"))  # searched for secrets too


@pytest.mark.lnbits
def test_apply_verify_on_lnbits_verifies_what_it_created(lnb: LnbitsCli) -> None:
    path = lnb.config({"tips": {"name": "Tips"}})
    result = lnb.apply(path, "--verify")
    assert result.exit_code == EXIT_OK, result.output
    assert "Apply complete: 1 done" in result.stdout
    assert "Verify complete: 1 verified, 0 failed" in result.stdout
    [wallet_id] = owned(lnb)
    assert len(lnb.payments(wallet_id)) == 1


@pytest.mark.lnbits
def test_verify_fails_when_the_server_is_on_another_network(lnb: LnbitsCli) -> None:
    path = lnb.config({"tips": {"name": "Tips"}}, provider={"network": "regtest"})
    result = lnb.apply(path, "--verify")  # the apply works; the check of its invoice fails
    assert result.exit_code == EXIT_ERROR, result.output
    assert "Apply complete: 1 done" in result.stdout
    assert "network_mismatch" in result.stdout
    assert "the invoice is for lnbc, but the wallet is on regtest (lnbcrt)" in result.stdout
    assert "set `provider.network: mainnet`" in result.stdout  # the fix
    assert "Verify FAILED: 0 verified, 1 failed" in result.stdout

    again = lnb.run("verify", str(path), "--format", "json")
    assert again.exit_code == EXIT_ERROR, again.output
    [r] = json.loads(again.stdout)["results"]
    assert r["status"] == "failed" and r["error_type"] == "network_mismatch"


@pytest.mark.lnbits
def test_verify_fails_when_lnbits_refuses_the_invoice(lnb: LnbitsCli) -> None:
    path = lnb.config({"tips": {"name": "Tips"}})
    assert lnb.apply(path).exit_code == EXIT_OK
    # LNbits refuses incoming invoices above its maximum (10 000 000 sats by default)
    result = lnb.run("verify", str(path), "--amount", "20000000 sat")
    assert result.exit_code == EXIT_ERROR, result.output
    assert "tips" in result.stdout and "FAILED" in result.stdout
    assert "invoice_refused" in result.stdout
    assert "Invoice amount 20000000 sats is too high" in result.stdout  # LNbits' reason
    assert "what to do:" in result.stdout and "server's limits" in result.stdout
    [wallet_id] = owned(lnb)
    assert lnb.payments(wallet_id) == []


@pytest.mark.lnbits
def test_verify_of_a_wallet_not_applied_yet_fails_naming_the_fix(lnb: LnbitsCli) -> None:
    path = lnb.config({"tips": {"name": "Tips"}})
    result = lnb.run("verify", str(path))
    assert result.exit_code == EXIT_ERROR, result.output
    assert "not_found" in result.stdout and "run plan and apply first" in result.stdout
    assert lnb.names() == {}
