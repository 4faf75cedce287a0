"""The published JSON Schemas (schemas/, and the same files inside the package) describe
what voltage-iac really writes: the JSON plan, the plan file, the drift report, the apply
result and the results of several stacks.

Real output is made by the CLI against the emulator served over HTTP on 127.0.0.1, in
states that exercise every action, both kinds, blocked and guarded changes, unmanaged
and foreign objects, every drift finding, failed, refused and interrupted applies, and
stacks that fail; each document must validate, and a mutated one must not.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from tests.conftest import TEST_KEY, Backend, config_doc, wallet
from tests.served import served_emulator as slow_emulator
from voltage_iac import kinds
from voltage_iac.cli import cli
from voltage_iac.drift import DRIFT_FORMAT_VERSION, FINDINGS, UNMANAGED_POLICIES
from voltage_iac.emulator.seed import (
    DEMO_ORGANIZATION_ID,
    DEMO_STAGING_ENVIRONMENT_ID,
    DEMO_STAGING_LINE_ID,
)
from voltage_iac.identity import wallet_id
from voltage_iac.kinds.webhook import EVENT_TYPES
from voltage_iac.plan import PLAN_FORMAT_VERSION, SUMMARY_ACTIONS
from voltage_iac.render.stacks import APPLY_FORMAT_VERSION, STACKS_FORMAT_VERSION
from voltage_iac.stacks import SEVERITY

REPO = Path(__file__).resolve().parents[1]
ORG = DEMO_ORGANIZATION_ID
PUBLISHED = REPO / "schemas"
PACKAGED = REPO / "voltage_iac" / "schemas"
NAMES = {
    "config": "config.v1.json",
    "plan": f"plan.v{PLAN_FORMAT_VERSION}.json",
    "plan-file": f"plan-file.v{PLAN_FORMAT_VERSION}.json",
    "drift": f"drift.v{DRIFT_FORMAT_VERSION}.json",
    "apply": f"apply.v{APPLY_FORMAT_VERSION}.json",
    "stacks": f"stacks.v{STACKS_FORMAT_VERSION}.json",
}


def _schema(name: str) -> dict[str, Any]:
    return dict(json.loads((PUBLISHED / NAMES[name]).read_text(encoding="utf-8")))


def _errors(name: str, doc: Any) -> list[str]:
    validator = Draft202012Validator(_schema(name))
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


# -- the files themselves ------------------------------------------------------------------


def test_every_schema_is_published_and_packaged_identically() -> None:
    published = sorted(p.name for p in PUBLISHED.glob("*.json"))
    assert published == sorted(p.name for p in PACKAGED.glob("*.json"))
    assert set(NAMES.values()) <= set(published)
    for name in published:
        assert (PUBLISHED / name).read_bytes() == (PACKAGED / name).read_bytes(), name


@pytest.mark.parametrize("name", sorted(NAMES))
def test_each_schema_is_a_valid_draft_2020_12_schema(name: str) -> None:
    schema = _schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_the_schemas_follow_the_code_s_versions_and_vocabularies() -> None:
    plan, plan_file, drift = _schema("plan"), _schema("plan-file"), _schema("drift")
    assert plan["properties"]["format_version"]["const"] == PLAN_FORMAT_VERSION
    assert plan_file["properties"]["format_version"]["const"] == PLAN_FORMAT_VERSION
    assert drift["properties"]["format_version"]["const"] == DRIFT_FORMAT_VERSION
    names = [k.name for k in kinds.registered()]
    for schema in (plan, plan_file, drift):
        assert schema["$defs"]["kind"]["enum"] == names
    actions = plan["$defs"]["change"]["properties"]["action"]["enum"]
    assert actions == [a.value for a in SUMMARY_ACTIONS]
    assert list(plan["$defs"]["summary"]["properties"]) == actions
    assert drift["$defs"]["finding"]["properties"]["finding"]["enum"] == list(FINDINGS)
    assert drift["properties"]["unmanaged_policy"]["enum"] == list(UNMANAGED_POLICIES)
    events = plan_file["$defs"]["webhook_record"]["properties"]["events"]["items"]["enum"]
    assert events == list(EVENT_TYPES)
    # The plan file is the plan document and more: the same definitions, more fields.
    for name, definition in plan["$defs"].items():
        assert plan_file["$defs"][name] == definition, name
    for name, field in plan["properties"].items():
        assert plan_file["properties"][name] == field, name
    assert set(plan_file["required"]) == {*plan["required"], "desired", "backend", "file_checksum"}


def test_the_apply_and_stacks_schemas_follow_the_code_and_the_documents_they_hold() -> None:
    plan, drift, apply, stacks = (_schema(n) for n in ("plan", "drift", "apply", "stacks"))
    assert apply["properties"]["format_version"]["const"] == APPLY_FORMAT_VERSION
    assert stacks["properties"]["format_version"]["const"] == STACKS_FORMAT_VERSION
    assert apply["$defs"]["kind"]["enum"] == [k.name for k in kinds.registered()]
    assert apply["$defs"]["summary"] == plan["$defs"]["summary"]  # plan_summary: the plan's
    result = apply["$defs"]["change_result"]["properties"]
    assert result["action"]["enum"] == [a.value for a in SUMMARY_ACTIONS]
    assert stacks["properties"]["exit_code"]["enum"] == sorted(SEVERITY)
    assert stacks["$defs"]["stack"]["properties"]["exit_code"]["enum"] == sorted(SEVERITY)
    # Each stack's document is exactly the one-stack document's schema (kept in step:
    # the wrapper holds a copy of each, with their definitions under the same names).
    meta = ("$schema", "$id", "title", "$defs")
    for name, single in (("plan", plan), ("drift", drift), ("apply", apply)):
        held = {k: v for k, v in single.items() if k not in meta}
        assert stacks["$defs"][f"{name}_document"] == held, name
        for definition, value in single["$defs"].items():
            assert stacks["$defs"][definition] == value, (name, definition)


@pytest.mark.parametrize("name", sorted(NAMES))
def test_the_schema_command_prints_each_packaged_schema(name: str) -> None:
    runner = CliRunner()
    args = ["schema"] if name == "config" else ["schema", name]
    printed = runner.invoke(cli, args)
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output) == _schema(name)
    where = runner.invoke(cli, [*args, "--path"])
    assert where.exit_code == 0, where.output
    path = Path(where.output.strip())
    assert path.name == NAMES[name]
    assert path.read_bytes() == (PUBLISHED / NAMES[name]).read_bytes()


# -- real output ---------------------------------------------------------------------------


@pytest.fixture
def served(served_emulator: tuple[str, str], tmp_path: Path) -> Iterator[Backend]:
    base_url, admin_url = served_emulator
    env = {"NO_COLOR": "1", "VOLTAGE_API_URL": "", "VOLTAGE_API_KEY": TEST_KEY}
    with httpx.Client(base_url=base_url, headers={"x-api-key": TEST_KEY}, timeout=10) as api:
        yield Backend("served", ["--api-url", base_url], env, tmp_path, api, admin_url)


def hook(name: str, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "environment": "staging",
        "url": f"https://hooks.example.com/{name.lower().replace(' ', '-')}",
        "events": ["send.succeeded"],
        "secret": {"file": f"secrets/{name.lower().replace(' ', '-')}.env"},
    }
    entry.update(fields)
    return entry


def _hooks_of_every_action() -> dict[str, Any]:
    """Webhooks that, after One, Two and Three, update, replace, create and delete one."""
    return {
        "h1": hook("One", url="https://hooks.example.com/one-v2"),  # update
        "h3": hook("Three", environment="production"),  # replace
        "h4": hook("Four"),  # create
    }  # h2: delete


def _apply(backend: Backend, path: Path, *flags: str) -> None:
    result = backend.run("apply", str(path), "--auto-approve", *flags)
    assert result.exit_code == 0, result.output


def _owned(backend: Backend, stack: str = "e2e") -> dict[str, dict[str, Any]]:
    return {
        w["metadata"]["voltage-iac.key"]: w
        for w in backend.wallets()
        if w["active"] and (w.get("metadata") or {}).get("voltage-iac.stack") == stack
    }


def _hand_made_wallet(backend: Backend, name: str, wallet_id_: str | None = None) -> str:
    assert backend.api is not None
    made = wallet_id_ or str(uuid.uuid4())
    body = {
        "id": made,
        "environment_id": DEMO_STAGING_ENVIRONMENT_ID,
        "line_of_credit_id": DEMO_STAGING_LINE_ID,
        "name": name,
        "network": "mutinynet",
        "limit": 1_000_000,
    }
    answer = backend.api.post(f"/organizations/{ORG}/wallets", json=body)
    assert answer.status_code == 202, answer.text
    backend.wait_for(lambda: any(w["id"] == made for w in backend.wallets()), name)
    return made


def _hook_listed(backend: Backend, hook_id: str) -> bool:
    assert backend.api is not None
    answer = backend.api.get(
        f"/organizations/{ORG}/webhooks", params={"environment_ids": DEMO_STAGING_ENVIRONMENT_ID}
    )
    return any(h["id"] == hook_id for h in answer.json())


def _wallet(backend: Backend, wid: str) -> dict[str, Any]:
    assert backend.api is not None
    return dict(backend.api.get(f"/organizations/{ORG}/wallets/{wid}").json())


def _rename(backend: Backend, wid: str, name: str) -> None:
    assert backend.api is not None
    answer = backend.api.patch(f"/organizations/{ORG}/wallets/{wid}", json={"name": name})
    assert answer.status_code == 202, answer.text
    backend.wait_for(lambda: _wallet(backend, wid)["name"] == name, f"rename to {name}")


def _delete(backend: Backend, wid: str) -> None:
    assert backend.api is not None
    answer = backend.api.delete(f"/organizations/{ORG}/wallets/{wid}")
    assert answer.status_code == 202, answer.text


def test_plans_with_every_action_and_both_kinds_match_the_published_schemas(
    served: Backend,
) -> None:
    backend = served
    assert backend.api is not None
    first = {
        "a": wallet("Alpha"),
        "b": wallet("Bravo"),
        "c": wallet("Charlie"),
        "d": wallet("Delta"),
    }
    hooks = {"h1": hook("One"), "h2": hook("Two"), "h3": hook("Three")}
    _apply(backend, backend.write_config(config_doc(first, webhooks=hooks)))
    other = backend.write_config(config_doc({"x": wallet("Xray")}, stack="other"), "other.yaml")
    _apply(backend, other)
    owned = _owned(backend)
    funded = httpx.put(
        f"{backend.admin_url}/wallets/{owned['d']['id']}/balance", json={"balance_msats": 5000}
    )
    funded.raise_for_status()
    _hand_made_wallet(backend, "Hand made")
    hand_hook = backend.api.post(
        f"/organizations/{ORG}/environments/{DEMO_STAGING_ENVIRONMENT_ID}/webhooks",
        json={
            "id": str(uuid.uuid4()),
            "url": "https://other.example.com",
            "name": "Hand-made hook",
            "events": [{"send": "succeeded"}],
        },
    )
    hand_hook.raise_for_status()
    backend.wait_for(lambda: _hook_listed(backend, hand_hook.json()["id"]), "a hand-made webhook")

    second = {
        "a": wallet("Alpha Prime"),  # update
        "b": wallet("Bravo", limit="20000 sat"),  # replace, guarded (20x)
        "d": wallet("Delta", limit="2000 sat"),  # replace, blocked: it holds funds
        "e": wallet("Echo"),  # create
    }  # c: delete
    hooks = _hooks_of_every_action()
    path = backend.write_config(config_doc(second, webhooks=hooks))
    plan_file = backend.tmp / "plan.json"
    made = backend.run("plan", str(path), "--format", "json", "--out", str(plan_file))
    assert made.exit_code == 0, made.output
    doc = json.loads(made.stdout)

    # The plan is the one this test means: every action, both kinds, every flag.
    actions = {(c["kind"], c["action"]) for c in doc["changes"]}
    assert actions == {
        (kind, action)
        for kind in ("wallet", "webhook")
        for action in [a.value for a in SUMMARY_ACTIONS]
    }
    assert any(c["blocked"] for c in doc["changes"])
    assert any(c["guarded"] for c in doc["changes"])
    assert {u["owner_stack"] for u in doc["unmanaged"]} >= {None, "other"}
    assert {u["kind"] for u in doc["unmanaged"]} == {"wallet", "webhook"}

    assert _errors("plan", doc) == []
    saved = json.loads(plan_file.read_text(encoding="utf-8"))
    assert _errors("plan-file", saved) == []
    assert set(saved["desired"]["resources"]) == {"wallet", "webhook"}
    shown = backend.run("show", str(plan_file), "--format", "json")
    assert shown.exit_code == 0, shown.output
    assert _errors("plan", json.loads(shown.stdout)) == []
    # The JSON plan is not a plan file (it records no desired state), and vice versa.
    assert _errors("plan-file", doc) != []
    assert _errors("plan", saved) != []

    for label, mutate in _PLAN_MUTATIONS.items():
        broken = copy.deepcopy(doc)
        mutate(broken)
        assert _errors("plan", broken) != [], label
    for label, mutate in _PLAN_FILE_MUTATIONS.items():
        broken = copy.deepcopy(saved)
        mutate(broken)
        assert _errors("plan-file", broken) != [], label


def _change_of(doc: dict[str, Any], kind: str, action: str) -> dict[str, Any]:
    return next(c for c in doc["changes"] if c["kind"] == kind and c["action"] == action)


_PLAN_MUTATIONS: dict[str, Any] = {
    "unknown action": lambda d: d["changes"][0].update(action="destroy"),
    "unknown kind": lambda d: d["changes"][0].update(kind="invoice"),
    "missing key": lambda d: d["changes"][0].pop("key"),
    "extra field on a change": lambda d: d["changes"][0].update(note="x"),
    "extra top-level field": lambda d: d.update(applied=True),
    "missing checksum": lambda d: d.pop("checksum"),
    "checksum not sha256": lambda d: d.update(checksum="md5:abc"),
    "format version 1": lambda d: d.update(format_version=1),
    "summary with add": lambda d: d["summary"].update(add=1),
    "provider unknown": lambda d: d.update(provider="stripe"),
    "create with an id": lambda d: _change_of(d, "wallet", "create").update(id="x"),
    "update without live": lambda d: _change_of(d, "wallet", "update").update(live=None),
    "wallet live with a webhook field": lambda d: _change_of(d, "wallet", "update")["live"].update(
        url="https://x"
    ),
    "field change without forces_replacement": lambda d: _change_of(d, "wallet", "create")[
        "changes"
    ][0].pop("forces_replacement"),
    "owned not kind:id": lambda d: d["owned"].append("nokind"),
    "unmanaged with a wallet_id": lambda d: d["unmanaged"][0].update(wallet_id="x"),
}

_PLAN_FILE_MUTATIONS: dict[str, Any] = {
    "no desired state": lambda d: d.pop("desired"),
    "no file checksum": lambda d: d.pop("file_checksum"),
    "webhook with its secret": lambda d: next(
        iter(d["desired"]["resources"]["webhook"].values())
    ).update(shared_secret="whsec_x"),
    "sink with a file and a command": lambda d: next(
        iter(d["desired"]["resources"]["webhook"].values())
    )["secret"].update(command=["true"]),
    "unknown event": lambda d: next(iter(d["desired"]["resources"]["webhook"].values()))[
        "events"
    ].append("send.maybe"),
    "wallet without a limit field": lambda d: next(
        iter(d["desired"]["resources"]["wallet"].values())
    ).pop("limit"),
    "a network in the response spelling": lambda d: next(
        iter(d["desired"]["resources"]["wallet"].values())
    ).update(network="testnet"),
    "unknown resource kind": lambda d: d["desired"]["resources"].update(invoice={}),
    "an api key among the provider fields": lambda d: d["desired"].update(api_key="k"),
}


def test_drift_reports_with_every_finding_match_the_published_schema(served: Backend) -> None:
    backend = served
    assert backend.api is not None
    admin = backend.admin_url
    config = {k: wallet(f"Wallet {k}") for k in ("a", "b", "c", "g", "l")}
    _apply(backend, backend.write_config(config_doc(config, webhooks={"h": hook("Hook")})))
    _apply(
        backend,
        backend.write_config(config_doc({"x": wallet("Xray")}, stack="other"), "other.yaml"),
    )
    # leftover: a replacement whose delete of the old wallet keeps failing
    rule = {"fault": "fail_before_commit", "method": "DELETE", "times": 20}
    httpx.post(f"{admin}/faults/schedule", json=rule).raise_for_status()
    replaced = {**config, "l": wallet("Wallet l", limit="2000 sat")}
    interrupted = backend.run(
        "apply",
        str(backend.write_config(config_doc(replaced, webhooks={"h": hook("Hook")}))),
        "--auto-approve",
        "--allow-replace",
        "--timeout",
        "2",
    )
    assert interrupted.exit_code == 1, interrupted.output
    httpx.put(f"{admin}/faults", json={"visibility_delay": 0.05}).raise_for_status()
    owned = _owned(backend)
    _rename(backend, owned["a"]["id"], "A by hand")  # changed
    _delete(backend, owned["b"]["id"])  # deleted
    backend.wait_for(lambda: not _wallet(backend, owned["b"]["id"])["active"], "delete of b")
    httpx.patch(f"{admin}/faults", json={"deletion_fails": 1.0}).raise_for_status()
    try:
        _delete(backend, owned["c"]["id"])  # deletion_failed
        backend.wait_for(
            lambda: _wallet(backend, owned["c"]["id"])["deletion_failed_at"] is not None,
            "a failed deletion",
        )
    finally:
        httpx.patch(f"{admin}/faults", json={"deletion_fails": 0.0}).raise_for_status()
    _hand_made_wallet(backend, "Hand made")  # unmanaged
    _hand_made_wallet(backend, "Side project")  # unmanaged, ignored by a rule
    # conflict: the id entry k would get is taken by a wallet nobody labelled
    taken = wallet_id(ORG, DEMO_STAGING_ENVIRONMENT_ID, "e2e", "k", 0)
    _hand_made_wallet(backend, "Squatter", taken)

    wanted = {k: v for k, v in replaced.items() if k != "g"}  # g: orphaned
    wanted["m"] = wallet("Wallet m")  # missing
    wanted["k"] = wallet("Wallet k")  # conflict
    path = backend.write_config(
        config_doc(
            wanted,
            webhooks={"h": hook("Hook", url="https://hooks.example.com/moved")},  # changed
            ignore=["Side project:unmanaged"],
        )
    )
    reports = {}
    for policy in UNMANAGED_POLICIES:
        result = backend.run("drift", str(path), "--format", "json", "--unmanaged", policy)
        assert result.exit_code == 2, result.output
        reports[policy] = json.loads(result.stdout)
        assert _errors("drift", reports[policy]) == [], policy
    found = {
        item["finding"]
        for report in reports.values()
        for part in ("drift", "ignored", "notices")
        for item in report[part]
    }
    assert found == set(FINDINGS)
    assert {i["kind"] for i in reports["report"]["drift"]} == {"wallet", "webhook"}
    assert reports["report"]["ignored"] and reports["report"]["notices"]

    in_sync = backend.write_config(config_doc({"x": wallet("Xray")}, stack="other"), "o.yaml")
    clean = backend.run("drift", str(in_sync), "--format", "json")
    assert clean.exit_code == 0, clean.output
    assert _errors("drift", json.loads(clean.stdout)) == []

    report = reports["report"]
    for label, mutate in _DRIFT_MUTATIONS.items():
        broken = copy.deepcopy(report)
        mutate(broken)
        assert _errors("drift", broken) != [], label


_DRIFT_MUTATIONS: dict[str, Any] = {
    "unknown finding": lambda d: d["drift"][0].update(finding="weird"),
    "the v1 spelling of a finding's type": lambda d: d["drift"][0].update(kind="changed"),
    "missing message": lambda d: d["drift"][0].pop("message"),
    "in sync with drift": lambda d: d.update(in_sync=True),
    "a notice that is drift": lambda d: d["notices"].append(copy.deepcopy(d["drift"][0])),
    "v1 field name": lambda d: d.update(wallets_checked=3),
    "negative count": lambda d: d.update(checked=-1),
    "unknown policy": lambda d: d.update(unmanaged_policy="ignore"),
}


# -- the apply result and several stacks ---------------------------------------------------


def _json_of(backend: Backend, code: int, *argv: str) -> dict[str, Any]:
    result = backend.run(*argv, "--format", "json")
    assert result.exit_code == code, result.output
    return dict(json.loads(result.stdout))


def test_apply_results_of_every_action_and_a_failure_match_the_published_schema(
    served: Backend,
) -> None:
    backend = served
    first = {k: wallet(f"Wallet {k}") for k in ("a", "b", "c")}
    hooks = {"h1": hook("One"), "h2": hook("Two"), "h3": hook("Three")}
    path = backend.write_config(config_doc(first, webhooks=hooks))
    created = _json_of(backend, 0, "apply", str(path), "--auto-approve")
    assert {(c["kind"], c["action"]) for c in created["changes"]} == {
        ("wallet", "create"),
        ("webhook", "create"),
    }
    assert _errors("apply", created) == []

    second = {
        "a": wallet("Alpha"),  # update
        "b": wallet("Wallet b", environment="production", line_of_credit="prod"),  # replace
        "e": wallet("Echo"),  # create
    }  # c: delete
    hooks = _hooks_of_every_action()
    path = backend.write_config(config_doc(second, webhooks=hooks))
    flags = ("--auto-approve", "--allow-delete", "--allow-replace")
    every = _json_of(backend, 0, "apply", str(path), *flags)
    assert {(c["kind"], c["action"], c["status"]) for c in every["changes"]} == {
        (kind, action.value, "done") for kind in ("wallet", "webhook") for action in SUMMARY_ACTIONS
    }
    assert _errors("apply", every) == []
    nothing = _json_of(backend, 0, "apply", str(path), "--auto-approve")
    assert nothing["changes"] == [] and _errors("apply", nothing) == []

    # A change that fails: the emulator fails every deletion.
    httpx.patch(f"{backend.admin_url}/faults", json={"deletion_fails": 1.0}).raise_for_status()
    try:
        fewer = backend.write_config(config_doc({"a": wallet("Alpha"), "e": wallet("Echo")}))
        failed = _json_of(
            backend, 1, "apply", str(fewer), "--auto-approve", "--allow-delete", "--timeout", "5"
        )
    finally:
        httpx.patch(f"{backend.admin_url}/faults", json={"deletion_fails": 0.0}).raise_for_status()
    assert "failed" in {c["status"] for c in failed["changes"]} and failed["exit_code"] == 1
    assert _errors("apply", failed) == []

    for label, mutate in _APPLY_MUTATIONS.items():
        broken = copy.deepcopy(failed)
        mutate(broken)
        assert _errors("apply", broken) != [], label


def _failed_change(doc: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in doc["changes"] if c["status"] == "failed")


_APPLY_MUTATIONS: dict[str, Any] = {
    "format version 2": lambda d: d.update(format_version=2),
    "unknown status": lambda d: d["changes"][0].update(status="not started"),
    "a failure without its message": lambda d: _failed_change(d).update(message=""),
    "a done change with a message": lambda d: d["changes"].append(
        {**_failed_change(d), "status": "done"}
    ),
    "unknown kind": lambda d: d["changes"][0].update(kind="invoice"),
    "extra field on a change": lambda d: d["changes"][0].update(note="x"),
    "totals without skipped": lambda d: d["totals"].pop("skipped"),
    "an exit code apply never gives": lambda d: d.update(exit_code=2),
    "checksum not sha256": lambda d: d.update(plan_checksum="md5:abc"),
    "summary in the old words": lambda d: d["plan_summary"].update(add=1),
    "negative seconds": lambda d: d["changes"][0].update(seconds=-1),
}


def _stack_dir(backend: Backend, name: str, wallets: dict[str, Any]) -> str:
    folder = backend.tmp / "stacks" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "wallets.yaml").write_text(json.dumps(config_doc(wallets, stack=name)))
    return str(folder)


def test_several_stacks_documents_match_the_published_schema(served: Backend) -> None:
    """plan, apply and drift of several stacks, with a stack whose configuration does
    not load and a stack whose apply is refused: every document validates."""
    backend = served
    payments = _stack_dir(backend, "payments", {"pay-eu": wallet("Pay EU")})
    treasury = _stack_dir(backend, "treasury", {"reserve": wallet("Reserve")})
    broken = backend.tmp / "stacks" / "broken"
    broken.mkdir()
    (broken / "wallets.yaml").write_text("version: 1\nstack: broken\nwallets: [\n")

    planned = _json_of(backend, 3, "plan", payments, treasury, str(broken))
    assert [sorted(set(s) - {"path", "stack", "exit_code"}) for s in planned["stacks"]] == [
        ["plan"],
        ["plan"],
        ["error"],
    ]
    assert _errors("stacks", planned) == []

    applied = _json_of(backend, 0, "apply", payments, treasury, "--auto-approve")
    assert [s["apply"]["totals"]["done"] for s in applied["stacks"]] == [1, 1]
    assert _errors("stacks", applied) == []

    # payments drops its wallet (a delete, refused without --allow-delete); treasury adds one
    _stack_dir(backend, "payments", {})
    _stack_dir(backend, "treasury", {"reserve": wallet("Reserve"), "float": wallet("Float")})
    blocked = _json_of(backend, 5, "apply", payments, treasury, "--auto-approve")
    refused, done = blocked["stacks"]
    assert refused["exit_code"] == 5 and "apply" not in refused and refused["error"]
    assert done["apply"]["changes"][0]["status"] == "done"
    assert _errors("stacks", blocked) == []

    drifted = _json_of(backend, 3, "drift", payments, treasury, str(broken))
    assert [s["exit_code"] for s in drifted["stacks"]] == [2, 0, 3]
    assert _errors("stacks", drifted) == []

    mutations: dict[str, Any] = {
        "format version 2": lambda d: d.update(format_version=2),
        "an unknown exit code": lambda d: d.update(exit_code=6),
        "no stacks": lambda d: d.update(stacks=[]),
        "an entry without its path": lambda d: d["stacks"][0].pop("path"),
        "an entry with neither document nor error": lambda d: d["stacks"][0].pop("drift"),
        "an entry with two documents": lambda d: d["stacks"][0].update(
            plan=planned["stacks"][0]["plan"]
        ),
        "a plan among drift reports": lambda d: d["stacks"].append(planned["stacks"][0]),
        "a drift report of the wrong version": lambda d: d["stacks"][0]["drift"].update(
            format_version=1
        ),
        "an extra field on an entry": lambda d: d["stacks"][0].update(note="x"),
    }
    for label, mutate in mutations.items():
        broken_doc = copy.deepcopy(drifted)
        mutate(broken_doc)
        assert _errors("stacks", broken_doc) != [], label


def test_interrupted_applies_with_skipped_changes_match_the_published_schemas(
    tmp_path: Path,
) -> None:
    """Stopped by --deadline (in a child process: the deadline signals the main thread,
    as Ctrl-C does): the changes not started are `skipped`, one stack or several."""
    folders = []
    for stack in ("payments", "treasury"):
        folder = tmp_path / stack
        folder.mkdir()
        doc = config_doc(
            {f"{stack[0]}{n:02d}": wallet(f"{stack} {n}") for n in range(30)}, stack=stack
        )
        (folder / "wallets.yaml").write_text(json.dumps(doc))
        folders.append(str(folder))
    env = {**os.environ, "NO_COLOR": "1", "VOLTAGE_API_URL": "", "VOLTAGE_API_KEY": TEST_KEY}
    documents = {}
    with slow_emulator(tmp_path, latency_ms=150) as emu:
        for name, paths in (("apply", folders[:1]), ("stacks", folders)):
            argv = [sys.executable, "-m", "voltage_iac", "apply", *paths, "--auto-approve"]
            argv += ["--format", "json", "--api-url", emu.base_url, "--deadline", "2"]
            done = subprocess.run(
                [*argv, "--parallelism", "1"],
                capture_output=True,
                text=True,
                env=env,
                timeout=90,
                check=False,
            )
            assert done.returncode == 1, done.stdout + done.stderr
            documents[name] = json.loads(done.stdout)
            assert _errors(name, documents[name]) == [], name
    single = documents["apply"]
    assert single["interrupted"] is True and single["totals"]["skipped"] > 0
    several = [s["apply"] for s in documents["stacks"]["stacks"]]
    assert all(a["interrupted"] and a["totals"]["skipped"] > 0 for a in several)
