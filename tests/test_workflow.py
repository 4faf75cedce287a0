"""The review workflow end to end: saved plans that cannot go stale silently, checksums,
the pull-request Markdown, drift reports, import and targets.

Each test runs the real command line against the emulator (embedded and served, see the
`backend` fixture). Live wallets are changed "out of band" by calling the emulator's API
directly, the way a person with the dashboard or another tool would.
"""

from __future__ import annotations

import json
import re
import stat
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import yaml
from markdown_it import MarkdownIt

from tests.conftest import TEST_KEY, Backend, config_doc, wallet
from voltage_iac.emulator.seed import (
    DEMO_LEGACY_WALLET_ID,
    DEMO_ORGANIZATION_ID,
    DEMO_STAGING_ENVIRONMENT_ID,
    DEMO_STAGING_LINE_ID,
)
from voltage_iac.render.markdown import MARKER

ORG = DEMO_ORGANIZATION_ID
LEGACY = "Legacy treasury"


# -- out-of-band changes, straight through the API ----------------------------------------


def _owned(backend: Backend, stack: str = "e2e") -> dict[str, dict[str, Any]]:
    """Active wallets of the stack by key."""
    return {
        w["metadata"]["voltage-iac.key"]: w
        for w in backend.wallets()
        if w["active"] and (w.get("metadata") or {}).get("voltage-iac.stack") == stack
    }


def _get(backend: Backend, wallet_id: str) -> dict[str, Any]:
    assert backend.api is not None
    answer = backend.api.get(f"/organizations/{ORG}/wallets/{wallet_id}")
    answer.raise_for_status()
    return dict(answer.json())


def _rename(backend: Backend, wallet_id: str, name: str) -> None:
    assert backend.api is not None
    answer = backend.api.patch(f"/organizations/{ORG}/wallets/{wallet_id}", json={"name": name})
    assert answer.status_code == 202, answer.text
    backend.wait_for(lambda: _get(backend, wallet_id)["name"] == name, f"rename to {name}")


def _delete(backend: Backend, wallet_id: str) -> None:
    assert backend.api is not None
    answer = backend.api.delete(f"/organizations/{ORG}/wallets/{wallet_id}")
    assert answer.status_code == 202, answer.text
    backend.wait_for(lambda: not _get(backend, wallet_id)["active"], f"delete of {wallet_id}")


def _create_unmanaged(backend: Backend, name: str, **extra: Any) -> str:
    """A wallet made outside voltage-iac (no ownership labels)."""
    assert backend.api is not None
    wallet_id = str(uuid.uuid4())
    body = {
        "id": wallet_id,
        "environment_id": DEMO_STAGING_ENVIRONMENT_ID,
        "line_of_credit_id": DEMO_STAGING_LINE_ID,
        "name": name,
        "network": "mutinynet",
        "limit": 5_000_000,
        **extra,
    }
    answer = backend.api.post(f"/organizations/{ORG}/wallets", json=body)
    assert answer.status_code == 202, answer.text
    backend.wait_for(lambda: any(w["id"] == wallet_id for w in backend.wallets()), name)
    return wallet_id


def _apply(backend: Backend, path: Path, *flags: str) -> None:
    result = backend.run("apply", str(path), "--auto-approve", *flags)
    assert result.exit_code == 0, result.output


def _checksum(stdout: str) -> str:
    match = re.search(r"^Plan checksum: (sha256:[0-9a-f]{64})$", stdout, re.MULTILINE)
    assert match, stdout
    return match.group(1)


def _plan_to_file(backend: Backend, path: Path) -> Path:
    plan_file = backend.tmp / "reviewed-plan.json"
    result = backend.run("plan", str(path), "--out", str(plan_file))
    assert result.exit_code == 0, result.output
    return plan_file


# -- saved plans ---------------------------------------------------------------------------


def test_reviewed_plan_file_applies_exactly_what_was_reviewed(backend: Backend) -> None:
    _apply(backend, backend.write_config(config_doc({"a": wallet("Alpha")})))
    path = backend.write_config(config_doc({"a": wallet("Alpha Prime"), "b": wallet("Bravo")}))
    plan_file = _plan_to_file(backend, path)

    result = backend.run("apply", str(path), "--plan", str(plan_file), "--auto-approve")
    assert result.exit_code == 0, result.output
    owned = _owned(backend)
    assert {k: w["name"] for k, w in owned.items()} == {"a": "Alpha Prime", "b": "Bravo"}
    # Applied once, the same reviewed plan no longer matches: it is never applied twice.
    again = backend.run("apply", str(path), "--plan", str(plan_file), "--auto-approve")
    assert again.exit_code == 5, again.output
    assert "stale" in again.stderr


def test_stale_plan_refused_after_out_of_band_renames(backend: Backend) -> None:
    _apply(backend, backend.write_config(config_doc({"a": wallet("Alpha"), "b": wallet("Bravo")})))
    owned = _owned(backend)
    path = backend.write_config(config_doc({"a": wallet("Alpha Prime"), "b": wallet("Bravo")}))
    plan_file = _plan_to_file(backend, path)

    _rename(backend, owned["a"]["id"], "Alpha by hand")  # a wallet the plan touches
    _rename(backend, owned["b"]["id"], "Bravo by hand")  # a wallet it leaves alone
    result = backend.run("apply", str(path), "--plan", str(plan_file), "--auto-approve")
    assert result.exit_code == 5, result.output
    assert f"the reviewed plan {plan_file} is stale; nothing was changed" in result.stderr
    assert (
        f"a: wallet {owned['a']['id']} field name changed since the plan was made: "
        "'Alpha' -> 'Alpha by hand'" in result.stderr
    )
    assert "b: now needs update, which the reviewed plan does not contain" in result.stderr
    assert "make a new plan and have it reviewed again" in result.stderr
    # Nothing was re-planned and applied behind the reviewer's back.
    assert {k: w["name"] for k, w in _owned(backend).items()} == {
        "a": "Alpha by hand",
        "b": "Bravo by hand",
    }


def test_stale_plan_refused_after_out_of_band_delete(backend: Backend) -> None:
    _apply(backend, backend.write_config(config_doc({"a": wallet("Alpha"), "b": wallet("Bravo")})))
    owned = _owned(backend)
    path = backend.write_config(config_doc({"a": wallet("Alpha Prime"), "b": wallet("Bravo")}))
    plan_file = _plan_to_file(backend, path)

    _delete(backend, owned["a"]["id"])
    result = backend.run("apply", str(path), "--plan", str(plan_file), "--auto-approve")
    assert result.exit_code == 5, result.output
    a_id = owned["a"]["id"]
    assert "a: now needs create instead of update" in result.stderr
    assert f"a: wallet {a_id} disappeared since the plan was made" in result.stderr
    assert f"owned wallet {a_id} disappeared since the plan was made" in result.stderr
    assert set(_owned(backend)) == {"b"}  # no wallet was created in its place


def test_stale_plan_refused_when_another_apply_added_an_owned_wallet(backend: Backend) -> None:
    small = backend.write_config(config_doc({"a": wallet("Alpha")}))
    _apply(backend, small)
    small = backend.write_config(config_doc({"a": wallet("Alpha Prime")}))
    plan_file = _plan_to_file(backend, small)

    # Meanwhile someone applies a bigger configuration of the same stack.
    bigger = backend.write_config(
        config_doc({"a": wallet("Alpha"), "c": wallet("Charlie")}), name="bigger.yaml"
    )
    _apply(backend, bigger)
    c_id = _owned(backend)["c"]["id"]

    result = backend.run("apply", str(small), "--plan", str(plan_file), "--auto-approve")
    assert result.exit_code == 5, result.output
    assert "c: now needs delete, which the reviewed plan does not contain" in result.stderr
    assert f"owned wallet {c_id} appeared since the plan was made" in result.stderr
    assert {k: w["name"] for k, w in _owned(backend).items()} == {"a": "Alpha", "c": "Charlie"}


def test_stale_plan_refused_when_the_configuration_changed(backend: Backend) -> None:
    _apply(backend, backend.write_config(config_doc({"a": wallet("Alpha")})))
    path = backend.write_config(config_doc({"a": wallet("Alpha Prime")}))
    plan_file = _plan_to_file(backend, path)

    path = backend.write_config(config_doc({"a": wallet("Alpha Second")}))
    result = backend.run("apply", str(path), "--plan", str(plan_file), "--auto-approve")
    assert result.exit_code == 5, result.output
    assert "the configuration changed since the plan was made" in result.stderr
    assert (
        "a: field name is now planned as 'Alpha Second', the reviewed plan had 'Alpha Prime'"
        in result.stderr
    )
    assert _owned(backend)["a"]["name"] == "Alpha"


def test_reviewed_plan_with_a_leftover_of_an_interrupted_replacement(
    served_emulator: tuple[str, str], tmp_path: Path
) -> None:
    """A key with two changes (the leftover's delete and its wallet's update): a stale plan
    names what changed, and nothing else."""
    base_url, admin_url = served_emulator
    env = {"NO_COLOR": "1", "VOLTAGE_API_URL": "", "VOLTAGE_API_KEY": TEST_KEY}
    with httpx.Client(base_url=base_url, headers={"x-api-key": TEST_KEY}) as api:
        backend = Backend("served", ["--api-url", base_url], env, tmp_path, api, admin_url)
        _apply(backend, backend.write_config(config_doc({"a": wallet("Alpha")})))
        [old] = _owned_list(backend)
        # The replacement's delete of the old wallet fails every time: a leftover remains.
        rule = {"fault": "fail_before_commit", "method": "DELETE", "times": 20}
        httpx.post(f"{admin_url}/faults/schedule", json=rule).raise_for_status()
        path = backend.write_config(config_doc({"a": wallet("Alpha", limit="2000 sat")}))
        failed = backend.run(
            "apply", str(path), "--auto-approve", "--allow-replace", "--timeout", "2"
        )
        assert failed.exit_code == 1, failed.output
        httpx.put(f"{admin_url}/faults", json={"visibility_delay": 0.05}).raise_for_status()
        assert len(_owned_list(backend)) == 2

        path = backend.write_config(config_doc({"a": wallet("Alpha Prime", limit="2000 sat")}))
        plan_file = _plan_to_file(backend, path)
        doc = json.loads(plan_file.read_text(encoding="utf-8"))
        assert sorted((c["action"], c["superseded"]) for c in doc["changes"]) == [
            ("delete", True),
            ("update", False),
        ]
        current = next(w for w in _owned_list(backend) if w["id"] != old["id"])
        _rename(backend, current["id"], "Alpha by hand")
        stale = backend.run(
            "apply", str(path), "--plan", str(plan_file), "--auto-approve", "--allow-replace"
        )
        assert stale.exit_code == 5, stale.output
        reasons = [line for line in stale.stderr.splitlines() if line.startswith("  - a:")]
        assert reasons == [
            f"  - a: wallet {current['id']} field name changed since the plan was made: "
            "'Alpha' -> 'Alpha by hand'"
        ]

        plan_file = _plan_to_file(backend, path)
        result = backend.run(
            "apply", str(path), "--plan", str(plan_file), "--auto-approve", "--allow-replace"
        )
        assert result.exit_code == 0, result.output
        [now] = _owned_list(backend)
        assert now == {**now, "id": current["id"], "name": "Alpha Prime"}


def _owned_list(backend: Backend) -> list[dict[str, Any]]:
    return [
        w
        for w in backend.wallets()
        if w["active"] and (w.get("metadata") or {}).get("voltage-iac.stack") == "e2e"
    ]


def test_checksum_match_applies_and_mismatch_refuses(backend: Backend) -> None:
    _apply(backend, backend.write_config(config_doc({"a": wallet("Alpha"), "b": wallet("Bravo")})))
    owned = _owned(backend)
    path = backend.write_config(config_doc({"a": wallet("Alpha Prime"), "b": wallet("Bravo")}))
    planned = backend.run("plan", str(path))
    assert planned.exit_code == 0, planned.output
    reviewed = _checksum(planned.stdout)

    _rename(backend, owned["b"]["id"], "Bravo by hand")
    refused = backend.run("apply", str(path), "--checksum", reviewed, "--auto-approve")
    assert refused.exit_code == 5, refused.output
    assert f"is not {reviewed}; nothing was changed" in refused.stderr
    assert _owned(backend)["a"]["name"] == "Alpha"

    replanned = backend.run("plan", str(path))
    fresh = _checksum(replanned.stdout)
    assert fresh != reviewed
    applied = backend.run("apply", str(path), "--checksum", fresh, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert {k: w["name"] for k, w in _owned(backend).items()} == {"a": "Alpha Prime", "b": "Bravo"}


def test_plan_file_is_owner_only_and_holds_no_key(
    served_emulator: tuple[str, str], tmp_path: Path
) -> None:
    base_url, admin_url = served_emulator
    env = {"NO_COLOR": "1", "VOLTAGE_API_URL": "", "VOLTAGE_API_KEY": TEST_KEY}
    with httpx.Client(base_url=base_url, headers={"x-api-key": TEST_KEY}) as api:
        backend = Backend("served", ["--api-url", base_url], env, tmp_path, api, admin_url)
        _apply(backend, backend.write_config(config_doc({"a": wallet("Alpha")})))
        path = backend.write_config(config_doc({"a": wallet("Alpha Prime"), "b": wallet("Bravo")}))
        plan_file = tmp_path / "plans" / "plan.json"
        plan_file.parent.mkdir()
        plan_file.write_text("an older file, readable by all\n", encoding="utf-8")
        plan_file.chmod(0o644)

        result = backend.run("plan", str(path), "--out", str(plan_file))
        assert result.exit_code == 0, result.output
        assert stat.S_IMODE(plan_file.stat().st_mode) == 0o600
        text = plan_file.read_text(encoding="utf-8")
        assert TEST_KEY not in text and TEST_KEY not in result.output
        doc = json.loads(text)
        assert doc["format_version"] == 2
        assert {c["kind"] for c in doc["changes"]} == {"wallet"}
        assert doc["checksum"] == _checksum(result.stdout)
        assert doc["config_digest"]
        [update] = [c for c in doc["changes"] if c["action"] == "update"]
        assert update["live"]["name"] == "Alpha"  # the live fields it was planned against
        assert [p.name for p in plan_file.parent.iterdir()] == ["plan.json"]


# -- the pull-request Markdown --------------------------------------------------------------


def _markdown(text: str) -> list[Any]:
    return MarkdownIt("commonmark").enable("table").parse(text)


def test_markdown_plan_parses_and_flags_what_reviewers_must_not_miss(backend: Backend) -> None:
    _apply(
        backend,
        backend.write_config(
            config_doc(
                {
                    "a": wallet("Alpha"),
                    "b": wallet("Bravo"),
                    "c": wallet("Charlie"),
                    "vault": wallet("Vault", protect=True),
                }
            )
        ),
    )
    path = backend.write_config(
        config_doc(
            {
                "a": wallet("Alpha | <b>new</b>"),
                "c": wallet("Charlie", limit="50000 sat"),
                "vault": wallet("Vault", limit="2000 sat", protect=True),
                "live": wallet(
                    "Live", environment="production", line_of_credit="prod", limit="0.01 btc"
                ),
            }
        )
    )
    result = backend.run("plan", str(path), "--format", "markdown", "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    text = result.stdout
    assert text.startswith(MARKER + "\n")
    assert len(text) < 60_000

    tokens = _markdown(text)
    tables = [t for t in tokens if t.type == "table_open"]
    sections = [t for t in tokens if t.type == "html_block" and t.content.startswith("<details>\n")]
    assert len(sections) == 5  # a, b, c, vault, live: one collapsible section each
    assert "1 unmanaged wallet(s), never changed" in text  # collapsed, after the sections
    assert len(tables) == 1 + len(sections)  # the counts table, then one inside each section
    cells = [t.content for t in tokens if t.type == "inline"]
    header = cells.index("add")
    assert cells[header : header + 8] == ["add", "change", "replace", "destroy", "1", "1", "2", "1"]
    quotes = "\n".join(
        t.content
        for i, t in enumerate(tokens)
        if t.type == "inline" and any(p.type == "blockquote_open" for p in tokens[:i])
    )
    for banner in (
        "[!CAUTION]",
        "Wallets will be deleted",
        "Wallets will be replaced",
        "Protected wallets are touched",
        "Review closely",
        "50x",
        "Mainnet wallets change",
    ):
        assert banner in quotes, banner
    # Limits in msats and BTC; user text escaped so it cannot break the table or inject HTML.
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "50000000 msats (0.0005 BTC)" in html
    assert "<b>new</b>" not in html and "Alpha &amp;#124;" not in html
    assert "Alpha | &lt;b&gt;new&lt;/b&gt;" in html


def test_markdown_of_a_large_plan_stays_under_the_comment_limit(backend: Backend) -> None:
    wallets = {
        f"w{i:03d}": wallet(
            f"Wallet number {i:03d} with a long descriptive name " + "x" * 60,
            metadata={f"k{j}": "v" * 40 for j in range(6)},
        )
        for i in range(300)
    }
    path = backend.write_config(config_doc(wallets))
    result = backend.run("plan", str(path), "--format", "markdown")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert len(text) <= 60_000
    assert text.startswith(MARKER)
    assert "This comment was shortened to fit" in text
    assert "**Plan: 300 to add, 0 to change, 0 to replace, 0 to destroy.**" in text
    tokens = _markdown(text)
    opened = sum(t.content.count("<details>") for t in tokens if t.type.startswith("html"))
    closed = sum(t.content.count("</details>") for t in tokens if t.type.startswith("html"))
    assert opened == closed  # no section cut in half
    assert "Plan checksum: `sha256:" in text.splitlines()[-1]


# -- drift ---------------------------------------------------------------------------------


def _drift_config(backend: Backend, **extra: Any) -> Path:
    wallets = {"a": wallet("Alpha"), "b": wallet("Bravo"), "c": wallet("Charlie")}
    wallets.update(extra.pop("wallets", {}))
    return backend.write_config(config_doc(wallets, **extra))


def test_drift_exit_codes_formats_and_ignore_rules(backend: Backend) -> None:
    path = _drift_config(backend, ignore=[f"{LEGACY}:unmanaged"])
    _apply(backend, path)
    in_sync = backend.run("drift", str(path))
    assert in_sync.exit_code == 0, in_sync.output
    assert "In sync: no drift found." in in_sync.stdout
    assert "1 finding(s) ignored by ignore rules." in in_sync.stdout

    owned = _owned(backend)
    _rename(backend, owned["a"]["id"], "Alpha by hand")
    _delete(backend, owned["b"]["id"])
    assert backend.api is not None
    httpx.patch(f"{backend.admin_url}/faults", json={"deletion_fails": 1.0}).raise_for_status()
    try:
        answer = backend.api.delete(f"/organizations/{ORG}/wallets/{owned['c']['id']}")
        assert answer.status_code == 202, answer.text
        backend.wait_for(
            lambda: _get(backend, owned["c"]["id"])["deletion_failed_at"] is not None,
            "a failed deletion",
        )
    finally:
        httpx.patch(f"{backend.admin_url}/faults", json={"deletion_fails": 0.0})
    side_id = _create_unmanaged(backend, "Side project")

    # By default a hand-made wallet is reported but is not drift.
    default = backend.run("drift", str(path))
    assert default.exit_code == 2, default.output
    assert f"Side project [{side_id}] in staging: exists in a managed environment" in (
        default.stdout
    )
    assert "Drift: 3 finding(s) in 3 resource(s)." in default.stdout

    strict = ("--unmanaged", "fail")
    text = backend.run("drift", str(path), *strict)
    assert text.exit_code == 2, text.output
    assert 'name: configured "Alpha", live "Alpha by hand"' in text.stdout
    assert "was deleted outside the configuration" in text.stdout
    assert "deletion failed at" in text.stdout
    assert f"exists in a managed environment but is not managed by any stack [{side_id}]" in (
        text.stdout
    )
    assert "Drift: 4 finding(s) in 4 resource(s)." in text.stdout

    as_json = backend.run("drift", str(path), "--format", "json", *strict)
    assert as_json.exit_code == 2, as_json.output
    doc = json.loads(as_json.stdout)
    assert doc["in_sync"] is False and doc["format_version"] == 2
    assert {(d["subject"], d["finding"], d["field"]) for d in doc["drift"]} == {
        ("a", "changed", "name"),
        ("b", "deleted", "deleted"),
        ("c", "deletion_failed", "deletion_failed"),
        ("Side project", "unmanaged", "unmanaged"),
    }

    markdown = backend.run("drift", str(path), "--format", "markdown", *strict)
    assert markdown.exit_code == 2, markdown.output
    tokens = _markdown(markdown.stdout)
    rows = [t for t in tokens if t.type == "tr_open"]
    assert len(rows) == 1 + 4  # header and one row per finding

    report = backend.tmp / "reports" / "drift.xml"
    junit = backend.run("drift", str(path), "--format", "junit", "--output", str(report), *strict)
    assert junit.exit_code == 2, junit.output
    assert junit.stdout == ""
    assert f"Drift report written to {report}: 4 finding(s)." in junit.stderr
    root = ET.fromstring(report.read_text(encoding="utf-8"))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {"a", "b", "c", "Side project", LEGACY}
    failed = {name for name, case in cases.items() if case.find("failure") is not None}
    assert failed == {"a", "b", "c", "Side project"}
    assert root.get("failures") == "4" and root.get("tests") == "5"
    assert cases[LEGACY].find("skipped") is not None  # ignored: shown as skipped
    assert "Alpha by hand" in (cases["a"].find("failure").text or "")  # type: ignore[union-attr]

    # Ignore rules: per wallet (field globs) and global (<wallet or name glob>:<field glob>).
    path = _drift_config(
        backend,
        wallets={"a": wallet("Alpha", ignore=["na*"])},
        ignore=[f"{LEGACY}:unmanaged", "Side*:unmanaged", "b:deleted", "c:deletion_*"],
    )
    ignored = backend.run("drift", str(path), "--unmanaged", "fail")
    assert ignored.exit_code == 0, ignored.output
    assert "5 finding(s) ignored by ignore rules." in ignored.stdout
    # Nothing was changed by any of this.
    assert _get(backend, owned["a"]["id"])["name"] == "Alpha by hand"


def test_drift_errors_are_errors_not_drift(
    served_emulator: tuple[str, str], tmp_path: Path
) -> None:
    base_url, admin_url = served_emulator
    env = {"NO_COLOR": "1", "VOLTAGE_API_URL": "", "VOLTAGE_API_KEY": TEST_KEY}
    backend = Backend("served", ["--api-url", base_url], env, tmp_path)
    path = backend.write_config(config_doc({"a": wallet("Alpha")}))
    drifted = backend.run("drift", str(path))
    assert drifted.exit_code == 2, drifted.output  # "a" is missing

    wrong_key = backend.run("drift", str(path), env={"VOLTAGE_API_KEY": "wrong-key-123456"})
    assert wrong_key.exit_code == 4, wrong_key.output  # authentication refused
    assert "wrong-key-123456" not in wrong_key.output

    faults = {"rate_limit": 1.0, "retry_after_ms": 1, "visibility_delay": 0.05}
    httpx.put(f"{admin_url}/faults", json=faults).raise_for_status()
    try:
        report = tmp_path / "drift.xml"
        failing = backend.run("drift", str(path), "--format", "junit", "--output", str(report))
    finally:
        httpx.put(f"{admin_url}/faults", json={"visibility_delay": 0.05}).raise_for_status()
    assert failing.exit_code == 1, failing.output
    assert failing.stdout == "" and not report.exists()

    invalid = backend.write_config({"version": 1, "stack": "e2e"}, name="broken.yaml")
    assert backend.run("drift", str(invalid)).exit_code == 3


# -- import ---------------------------------------------------------------------------------


def test_import_into_a_directory_config_then_plan_shows_no_changes(backend: Backend) -> None:
    config_dir = backend.tmp / "config"
    config_dir.mkdir()
    doc = config_doc({"a": wallet("Alpha")})
    (config_dir / "wallets.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    _apply(backend, config_dir)
    side_id = _create_unmanaged(backend, "Side project", metadata={"team": "growth"})
    before = backend.run("plan", str(config_dir), "--detailed-exitcode")
    assert before.exit_code == 0, before.output
    assert "Unmanaged wallets (2;" in before.stdout

    imported = config_dir / "imported.yaml"
    result = backend.run(
        "import", str(config_dir), "--environment", "staging", "--output", str(imported)
    )
    assert result.exit_code == 0, result.output
    wallets = yaml.safe_load(imported.read_text(encoding="utf-8"))["wallets"]
    assert {w["id"] for w in wallets.values()} == {side_id, DEMO_LEGACY_WALLET_ID}
    assert wallets["side-project"]["metadata"] == {"team": "growth"}

    after = backend.run("plan", str(config_dir), "--detailed-exitcode")
    assert after.exit_code == 0, after.output
    assert "No changes." in after.stdout and "Unmanaged wallets" not in after.stdout
    assert backend.run("drift", str(config_dir)).exit_code == 0
    # An existing file is never overwritten.
    again = backend.run(
        "import", str(config_dir), "--environment", "staging", "--output", str(imported)
    )
    assert again.exit_code == 3, again.output


def test_import_merged_into_a_single_file_config(backend: Backend) -> None:
    doc = config_doc({"a": wallet("Alpha")})
    path = backend.write_config(doc)
    _apply(backend, path)
    result = backend.run("import", str(path), "--environment", "staging")
    assert result.exit_code == 0, result.output
    imported = yaml.safe_load(result.stdout)
    assert list(imported["wallets"]) == ["legacy-treasury"]
    doc["wallets"].update(imported["wallets"])
    for name, loc in imported.get("lines_of_credit", {}).items():
        doc["lines_of_credit"][name] = loc
    path = backend.write_config(doc)
    plan = backend.run("plan", str(path), "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    assert "No changes." in plan.stdout


# -- targets --------------------------------------------------------------------------------


def test_targeted_plan_says_so_in_every_format_and_apply_keeps_to_it(backend: Backend) -> None:
    _apply(backend, backend.write_config(config_doc({"a": wallet("Alpha"), "b": wallet("Bravo")})))
    path = backend.write_config(config_doc({"a": wallet("Alpha 2"), "b": wallet("Bravo 2")}))

    text = backend.run("plan", str(path), "--target", "a")
    assert text.exit_code == 0, text.output
    assert "Targeted plan: only a (other wallets were not considered)" in text.stdout
    assert "Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy." in text.stdout

    as_json = backend.run("plan", str(path), "--target", "a", "--format", "json")
    doc = json.loads(as_json.stdout)
    assert doc["targets"] == ["a"] and [c["key"] for c in doc["changes"]] == ["a"]
    untargeted = json.loads(backend.run("plan", str(path), "--format", "json").stdout)
    assert untargeted["targets"] == []

    markdown = backend.run(
        "plan", str(path), "--target", "a", "--target", "b", "--format", "markdown"
    )
    tokens = _markdown(markdown.stdout)
    notes = [
        tokens[i + 2].content
        for i, t in enumerate(tokens)
        if t.type == "blockquote_open" and "[!NOTE]" in tokens[i + 2].content
    ]
    assert any("Targeted plan: only `a`, `b`" in n for n in notes), markdown.stdout

    unknown = backend.run("plan", str(path), "--target", "nope")
    assert unknown.exit_code == 3 and "nope" in unknown.stderr

    # A targeted reviewed plan keeps its targets when applied.
    plan_file = backend.tmp / "targeted.json"
    assert backend.run("plan", str(path), "--target", "a", "--out", str(plan_file)).exit_code == 0
    applied = backend.run("apply", str(path), "--plan", str(plan_file), "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "Targeted plan: only a" in applied.stdout
    assert {k: w["name"] for k, w in _owned(backend).items()} == {"a": "Alpha 2", "b": "Bravo"}
    both = backend.run("apply", str(path), "--plan", str(plan_file), "--target", "b")
    assert both.exit_code == 3, both.output

    _apply(backend, path, "--target", "b")
    assert {k: w["name"] for k, w in _owned(backend).items()} == {"a": "Alpha 2", "b": "Bravo 2"}
