"""The published JSON Schemas (schemas/, and the same files inside the package) describe
what voltage-iac really writes: the JSON plan, the plan file and the drift report.

Real output is made by the CLI against the emulator served over HTTP on 127.0.0.1, in
states that exercise every action, both kinds, blocked and guarded changes, unmanaged
and foreign objects, and every drift finding; each document must validate, and a
mutated one must not.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from tests.conftest import TEST_KEY, Backend, config_doc, wallet
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

REPO = Path(__file__).resolve().parents[1]
ORG = DEMO_ORGANIZATION_ID
PUBLISHED = REPO / "schemas"
PACKAGED = REPO / "voltage_iac" / "schemas"
NAMES = {
    "config": "config.v1.json",
    "plan": f"plan.v{PLAN_FORMAT_VERSION}.json",
    "plan-file": f"plan-file.v{PLAN_FORMAT_VERSION}.json",
    "drift": f"drift.v{DRIFT_FORMAT_VERSION}.json",
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
    hooks = {
        "h1": hook("One", url="https://hooks.example.com/one-v2"),  # update
        "h3": hook("Three", environment="production"),  # replace
        "h4": hook("Four"),  # create
    }  # h2: delete
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
