"""The real command line end to end against the emulator, embedded and served on loopback.

Each test runs in both modes (see the `backend` fixture): the CLI's own embedded
emulator (`--api-url emulator`), and `voltage-iac emulator serve` in another process.
"""

from __future__ import annotations

import json

from tests.conftest import Backend, config_doc, wallet
from voltage_iac.emulator.seed import DEMO_LEGACY_WALLET_ID


def _active(backend: Backend) -> dict[str, dict]:
    return {w["id"]: w for w in backend.wallets() if w["active"]}


def _owned(backend: Backend, stack: str = "e2e") -> list[dict]:
    return [
        w
        for w in backend.wallets()
        if w["active"] and (w.get("metadata") or {}).get("voltage-iac.stack") == stack
    ]


def test_create_then_noop_second_run(backend: Backend) -> None:
    path = backend.write_config(
        config_doc(
            {"payouts": wallet("Payouts", metadata={"team": "payouts"}), "ops": wallet("Ops")}
        )
    )
    first = backend.run("apply", str(path), "--auto-approve")
    assert first.exit_code == 0, first.output
    assert "Plan: 2 to add, 0 to change, 0 to replace, 0 to destroy." in first.stdout
    assert "Apply complete: 2 done, 0 failed, 0 not started." in first.stdout
    owned = _owned(backend)
    assert sorted(w["name"] for w in owned) == ["Ops", "Payouts"]
    assert {w["limit"] for w in owned} == {1_000_000}

    again = backend.run("apply", str(path), "--auto-approve")
    assert again.exit_code == 0, again.output
    assert "No changes." in again.stdout
    plan = backend.run("plan", str(path), "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    assert len(_owned(backend)) == 2


def test_plan_detailed_exitcode_and_json(backend: Backend) -> None:
    path = backend.write_config(config_doc({"a": wallet("Alpha")}))
    result = backend.run("plan", str(path), "--detailed-exitcode", "--format", "json")
    assert result.exit_code == 2, result.output
    doc = json.loads(result.stdout)
    assert doc["summary"]["create"] == 1
    assert doc["changes"][0]["new_id"]
    assert _owned(backend) == []  # plan changes nothing


def test_rename_in_place_keeps_the_wallet_id(backend: Backend) -> None:
    path = backend.write_config(config_doc({"a": wallet("Alpha")}))
    assert backend.run("apply", str(path), "--auto-approve").exit_code == 0
    [before] = _owned(backend)
    path = backend.write_config(config_doc({"a": wallet("Alpha Prime")}))
    result = backend.run("apply", str(path), "--auto-approve")
    assert result.exit_code == 0, result.output
    assert '~ name = "Alpha" -> "Alpha Prime"' in result.stdout
    [after] = _owned(backend)
    assert after["id"] == before["id"] and after["name"] == "Alpha Prime"


def test_delete_refused_then_allowed(backend: Backend) -> None:
    path = backend.write_config(config_doc({"a": wallet("Alpha"), "b": wallet("Bravo")}))
    assert backend.run("apply", str(path), "--auto-approve").exit_code == 0
    path = backend.write_config(config_doc({"a": wallet("Alpha")}))
    refused = backend.run("apply", str(path), "--auto-approve")
    assert refused.exit_code == 5, refused.output
    assert "--allow-delete" in refused.stderr
    assert len(_owned(backend)) == 2
    allowed = backend.run("apply", str(path), "--auto-approve", "--allow-delete")
    assert allowed.exit_code == 0, allowed.output
    assert [w["name"] for w in _owned(backend)] == ["Alpha"]
    deleted = [w for w in backend.wallets() if not w["active"]]
    assert [w["name"] for w in deleted] == ["Bravo"] and deleted[0]["deleted_at"]


def test_replace_refused_then_allowed(backend: Backend) -> None:
    path = backend.write_config(config_doc({"a": wallet("Alpha", limit="1000 sat")}))
    assert backend.run("apply", str(path), "--auto-approve").exit_code == 0
    [old] = _owned(backend)
    path = backend.write_config(config_doc({"a": wallet("Alpha", limit="2000 sat")}))
    refused = backend.run("apply", str(path), "--auto-approve")
    assert refused.exit_code == 5, refused.output
    assert "--allow-replace" in refused.stderr
    allowed = backend.run("apply", str(path), "--auto-approve", "--allow-replace")
    assert allowed.exit_code == 0, allowed.output
    [new] = _owned(backend)
    assert new["id"] != old["id"] and new["limit"] == 2_000_000
    assert new["metadata"]["voltage-iac.generation"] == "1"
    assert backend.run("plan", str(path), "--detailed-exitcode").exit_code == 0


def test_protected_wallet_is_never_replaced_or_deleted(backend: Backend) -> None:
    path = backend.write_config(config_doc({"vault": wallet("Vault", protect=True)}))
    assert backend.run("apply", str(path), "--auto-approve").exit_code == 0
    path = backend.write_config(
        config_doc({"vault": wallet("Vault", limit="5000 sat", protect=True)})
    )
    result = backend.run(
        "apply", str(path), "--auto-approve", "--allow-replace", "--allow-delete", "--force"
    )
    assert result.exit_code == 5, result.output
    assert "protected" in result.stderr
    [vault] = _owned(backend)
    assert vault["limit"] == 1_000_000


def test_unmanaged_wallet_is_listed_and_never_touched(backend: Backend) -> None:
    before = _active(backend)[DEMO_LEGACY_WALLET_ID]
    path = backend.write_config(config_doc({"a": wallet("Alpha")}))
    result = backend.run("apply", str(path), "--auto-approve", "--allow-delete")
    assert result.exit_code == 0, result.output
    assert "Legacy treasury" in result.stdout and "Unmanaged wallets" in result.stdout
    after = _active(backend)[DEMO_LEGACY_WALLET_ID]
    assert after == before


def test_line_of_credit_too_small_fails_before_any_write(backend: Backend) -> None:
    path = backend.write_config(
        config_doc({"big": wallet("Big", limit="6 btc"), "bigger": wallet("Bigger", limit="6 btc")})
    )
    result = backend.run("apply", str(path), "--auto-approve")
    assert result.exit_code == 5, result.output
    assert "only" in result.stderr and "available" in result.stderr
    assert _owned(backend) == []


def test_wrong_api_key_is_exit_4_and_never_echoed(served_emulator, tmp_path) -> None:
    base_url, _admin = served_emulator
    backend = Backend("served", ["--api-url", base_url], {"NO_COLOR": "1"}, tmp_path)
    path = backend.write_config(config_doc({"a": wallet("Alpha")}))
    result = backend.run("plan", str(path), env={"VOLTAGE_API_KEY": "wrong-key-123456"})
    assert result.exit_code == 4, result.output
    assert "wrong-key-123456" not in result.output
    missing = backend.run("plan", str(path), env={"VOLTAGE_API_KEY": ""})
    assert missing.exit_code == 4, missing.output
    assert "VOLTAGE_API_KEY" in missing.stderr
