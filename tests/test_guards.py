"""Guards sized for money, end to end: the real CLI against the emulator (embedded and served).

- The mass-change guard: replacements + deletes above `guards.mass_change_share` of an
  environment's managed wallets (once it manages `mass_change_min_wallets`) need --force.
- The limit-increase guard: raising a limit more than `guards.limit_increase_factor`
  times (or from 0) needs --force.
- An override is recorded: the plan shown by apply, `plan --force` in every format and a
  saved plan file say which guards --force overrides, and `apply --plan FILE` must agree
  with the file on --force.
- Mainnet changes are called out in every plan format.
"""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Backend, config_doc, wallet


def _owned(backend: Backend) -> list[dict[str, Any]]:
    return sorted(
        (
            w
            for w in backend.wallets()
            if w["active"] and (w.get("metadata") or {}).get("voltage-iac.stack") == "e2e"
        ),
        key=lambda w: w["name"],
    )


def _apply(backend: Backend, doc: dict[str, Any], *flags: str) -> Any:
    path = backend.write_config(doc)
    return backend.run("apply", str(path), "--auto-approve", *flags)


FOUR = {f"w{i}": wallet(f"Wallet {i}") for i in range(4)}
MASS_GUARD = {"mass_change_share": 0.5, "mass_change_min_wallets": 4}


def test_mass_change_guard_uses_the_configured_thresholds(backend: Backend) -> None:
    assert _apply(backend, config_doc(FOUR, guards=MASS_GUARD)).exit_code == 0
    assert len(_owned(backend)) == 4

    # 3 of 4 (75%) deleted: above the configured 50%, so --allow-delete is not enough.
    keep_one = config_doc({"w0": FOUR["w0"]}, guards=MASS_GUARD)
    refused = _apply(backend, keep_one, "--allow-delete")
    assert refused.exit_code == 5, refused.output
    assert "environment staging: 3 of 4 managed wallets would be replaced or deleted" in (
        refused.stderr
    )
    assert "(75%, guard: 50%) (pass --force to allow)" in refused.stderr
    assert len(_owned(backend)) == 4

    # The defaults (30%, from 10 wallets) would not guard 4 wallets: the YAML decides.
    plan = backend.run("plan", str(backend.write_config(config_doc({"w0": FOUR["w0"]}))))
    assert plan.exit_code == 0 and "Guards overridden" not in plan.stdout

    # 2 of 4 (50%) is not above the share: deletes need only --allow-delete.
    keep_two = config_doc({k: FOUR[k] for k in ("w0", "w1")}, guards=MASS_GUARD)
    path = backend.write_config(keep_two)
    dry = backend.run("plan", str(path), "--format", "json", "--force")
    assert json.loads(dry.stdout)["overrides"] == []

    # With --force the 3 deletes go ahead, and the plan shown says what was overridden.
    forced = _apply(backend, keep_one, "--allow-delete", "--force")
    assert forced.exit_code == 0, forced.output
    assert "Guards overridden with --force:" in forced.stdout
    assert "environment staging: 3 of 4 managed wallets" in forced.stdout
    assert [w["name"] for w in _owned(backend)] == ["Wallet 0"]


def test_limit_increase_guard_uses_the_configured_factor(backend: Backend) -> None:
    guards = {"limit_increase_factor": 2}
    start = config_doc({"a": wallet("Alpha", limit="1000 sat")}, guards=guards)
    assert _apply(backend, start).exit_code == 0

    # 3x is above the factor: --allow-replace alone is refused.
    triple = config_doc({"a": wallet("Alpha", limit="3000 sat")}, guards=guards)
    refused = _apply(backend, triple, "--allow-replace")
    assert refused.exit_code == 5, refused.output
    assert "a: limit would grow 3x (guard: 2x) (pass --force to allow)" in refused.stderr
    assert [w["limit"] for w in _owned(backend)] == [1_000_000]

    # 2x is not above it.
    double = config_doc({"a": wallet("Alpha", limit="2000 sat")}, guards=guards)
    allowed = _apply(backend, double, "--allow-replace")
    assert allowed.exit_code == 0, allowed.output
    assert "Guards overridden" not in allowed.stdout
    assert [w["limit"] for w in _owned(backend)] == [2_000_000]

    # Above it with --force: done, and the override is in the plan shown.
    forced = _apply(
        backend,
        config_doc({"a": wallet("Alpha", limit="5000 sat")}, guards=guards),
        "--allow-replace",
        "--force",
    )
    assert forced.exit_code == 0, forced.output
    assert "Guards overridden with --force:" in forced.stdout
    assert "a: limit would grow 2.5x (guard: 2x)" in forced.stdout
    assert [w["limit"] for w in _owned(backend)] == [5_000_000]


def test_raising_a_limit_from_zero_is_guarded(backend: Backend) -> None:
    assert _apply(backend, config_doc({"z": wallet("Zero", limit=0)})).exit_code == 0
    raised = config_doc({"z": wallet("Zero", limit="1000 sat")})
    refused = _apply(backend, raised, "--allow-replace")
    assert refused.exit_code == 5, refused.output
    assert "z: limit would grow from 0 (guard: 10x)" in refused.stderr
    assert [w["limit"] for w in _owned(backend)] == [0]
    plan = backend.run("plan", str(backend.write_config(raised)), "--format", "markdown")
    grows = "limit grows from 0 (0 msats (0 BTC) -&gt; 1000000 msats (0.00001 BTC))"
    assert f"> - wallet `z`: {grows}" in plan.stdout
    assert "! limit grows from 0" in backend.run("plan", str(backend.write_config(raised))).stdout


def test_force_is_recorded_in_every_plan_format_and_in_saved_plans(backend: Backend) -> None:
    guards = {"limit_increase_factor": 2}
    assert _apply(backend, config_doc({"a": wallet("Alpha")}, guards=guards)).exit_code == 0
    path = backend.write_config(config_doc({"a": wallet("Alpha", limit="4000 sat")}, guards=guards))
    override = "a: limit would grow 4x (guard: 2x)"

    unforced = json.loads(backend.run("plan", str(path), "--format", "json").stdout)
    assert unforced["force"] is False and unforced["overrides"] == []
    forced_json = backend.run("plan", str(path), "--format", "json", "--force")
    doc = json.loads(forced_json.stdout)
    assert doc["force"] is True and doc["overrides"] == [override]
    assert doc["checksum"] == unforced["checksum"]  # --force changes no change
    text = backend.run("plan", str(path), "--force").stdout
    assert "Guards overridden with --force:\n    - " + override in text
    markdown = backend.run("plan", str(path), "--format", "markdown", "--force").stdout
    assert "> **Guards overridden with --force**\n> - a: limit would grow 4x" in markdown
    assert "Guards overridden" not in backend.run("plan", str(path), "--format", "markdown").stdout

    reviewed = backend.tmp / "reviewed.json"
    assert backend.run("plan", str(path), "--force", "--out", str(reviewed)).exit_code == 0
    saved = json.loads(reviewed.read_text(encoding="utf-8"))
    assert saved["force"] is True and saved["overrides"] == [override]

    # The file records an override: applying it without --force is refused, naming it.
    no_force = backend.run(
        "apply", str(path), "--plan", str(reviewed), "--auto-approve", "--allow-replace"
    )
    assert no_force.exit_code == 5, no_force.output
    assert f"was made with --force (it overrides: {override}) (pass --force" in no_force.stderr
    assert [w["limit"] for w in _owned(backend)] == [1_000_000]

    # A file made without --force cannot be applied with it: the review never showed it.
    unreviewed = backend.tmp / "unreviewed.json"
    assert backend.run("plan", str(path), "--out", str(unreviewed)).exit_code == 0
    sneaked = backend.run(
        "apply",
        str(path),
        "--plan",
        str(unreviewed),
        "--auto-approve",
        "--allow-replace",
        "--force",
    )
    assert sneaked.exit_code == 5, sneaked.output
    assert "was made without --force" in sneaked.stderr and override in sneaked.stderr
    assert [w["limit"] for w in _owned(backend)] == [1_000_000]

    applied = backend.run(
        "apply",
        str(path),
        "--plan",
        str(reviewed),
        "--auto-approve",
        "--allow-replace",
        "--force",
    )
    assert applied.exit_code == 0, applied.output
    assert "Guards overridden with --force:" in applied.stdout
    assert [w["limit"] for w in _owned(backend)] == [4_000_000]


def test_mainnet_changes_are_called_out_in_every_format(backend: Backend) -> None:
    mainnet = backend.write_config(
        config_doc(
            {
                "test": wallet("Test"),
                "live": wallet("Live", environment="production", line_of_credit="prod"),
            }
        )
    )
    text = backend.run("plan", str(mainnet)).stdout
    assert "MAINNET: 1 change(s) act on mainnet (real money): wallet live" in text
    assert "! MAINNET" in text
    doc = json.loads(backend.run("plan", str(mainnet), "--format", "json").stdout)
    assert doc["mainnet"] is True
    assert {c["key"]: c["mainnet"] for c in doc["changes"]} == {"live": True, "test": False}
    markdown = backend.run("plan", str(mainnet), "--format", "markdown").stdout
    banner = "> [!IMPORTANT]\n> **Mainnet wallets change (real money)**\n"
    assert banner + "> - wallet `live` (create)" in markdown

    staging_only = backend.write_config(config_doc({"test": wallet("Test")}), "staging.yaml")
    assert "MAINNET" not in backend.run("plan", str(staging_only)).stdout
    assert (
        json.loads(backend.run("plan", str(staging_only), "--format", "json").stdout)["mainnet"]
        is False
    )
    assert "Mainnet" not in backend.run("plan", str(staging_only), "--format", "markdown").stdout
