"""The policy layer without a backend: conftest's layout in the example policies, the
messages rules may give, verdict ids and overrides, the checksum of a judged plan, the
reference check, and the memory limit of an evaluation.

conftest itself cannot be installed here, so what makes the files run under it
unchanged is checked as layout: package, rule names, Rego v1 syntax, and that every
input field the examples read is a documented field of the plan JSON.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from voltage_iac.errors import ConfigError
from voltage_iac.plan import Action, Change, FieldChange, Plan
from voltage_iac.policy import judge, load_policies
from voltage_iac.policy.core import (
    RULE_NAME,
    PolicyModule,
    PolicyRun,
    evaluate,
    strip_literals,
    unbound_references,
)
from voltage_iac.stale import read_plan_document

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "policies"
FORMATS = (REPO / "docs" / "formats.md").read_text(encoding="utf-8")


def _rego_files() -> list[Path]:
    files = sorted(EXAMPLES.rglob("*.rego"))
    assert len(files) >= 4
    return files


@pytest.mark.parametrize("path", _rego_files(), ids=lambda p: p.name)
def test_examples_keep_conftests_layout(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    plain = strip_literals(source)
    assert re.search(r"^package main$", plain, re.MULTILINE), "conftest's default namespace"
    assert re.search(r"^import rego\.v1$", plain, re.MULTILINE), "Rego v1 under OPA 0.x too"
    heads = re.findall(r"^([a-z_]\w*) contains ", plain, re.MULTILINE)
    assert heads and all(RULE_NAME.match(h) for h in heads), heads
    # v1 syntax only: no `deny[msg] {` heads (OPA 1.x, so current conftest, refuses them)
    assert not re.search(r"^\w+\[\w+\]\s*\{", plain, re.MULTILINE)
    assert not re.search(r"^\w+.*\)\s*\{\s*$", plain, re.MULTILINE)  # bodies need `if`


def _documented(table_heading: str) -> set[str]:
    """The field names of the first table after `table_heading` in docs/formats.md."""
    after = FORMATS.split(table_heading, 1)[1].lstrip("\n")
    table = after.split("\n\n", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE))


def test_every_input_field_the_examples_read_is_a_documented_plan_field() -> None:
    top = _documented("Top level:")
    change = _documented("Each change:")
    text = "\n".join(strip_literals(p.read_text()) for p in _rego_files())
    read_top = set(re.findall(r"\binput\.(\w+)", text))
    read_change = set(re.findall(r"\bchange\.(\w+)", text))
    read_field = set(re.findall(r"\bfield\.(\w+)", text))
    assert read_top and read_top <= top, read_top - top
    assert read_change and read_change <= change, read_change - change
    assert read_field <= {"field", "before", "after", "forces_replacement"}


def test_the_example_data_is_a_mapping_conftest_can_read() -> None:
    data = sorted(EXAMPLES.glob("*.json"))
    assert data
    for path in data:
        assert isinstance(json.loads(path.read_text()), dict), path


# -- messages and verdicts -------------------------------------------------------------------


def _run(tmp_path: Path, *sources: str, **options: object) -> PolicyRun:
    for index, source in enumerate(sources):
        (tmp_path / f"p{index}.rego").write_text(source)
    return load_policies([tmp_path], **options)  # type: ignore[arg-type]


def test_every_message_shape_conftest_accepts(tmp_path: Path) -> None:
    run = _run(
        tmp_path,
        "package main\n\nimport rego.v1\n\n"
        'deny contains "plain text" if { input.a == 1 }\n\n'
        'deny_named contains {"msg": "about one", "key": "k1", "kind": "wallet"} if { true }\n\n'
        'violation contains {"msg": "with id", "id": "RULE-7"} if { true }\n\n'
        'warn contains "careful" if { true }\n\n'
        "helper := 5\n",
    )
    found = evaluate(run, {"a": 1})
    shapes = [(v.type, v.rule, v.message, v.kind, v.key) for v in found]
    assert shapes == [
        ("deny", "deny", "plain text", None, None),
        ("deny", "deny_named", "about one", "wallet", "k1"),
        ("violation", "violation", "with id", None, None),
        ("warn", "warn", "careful", None, None),
    ]
    assert [v.blocking for v in found] == [True, True, True, False]
    assert found[2].id == "RULE-7"
    assert re.fullmatch(r"deny-[0-9a-f]{8}", found[0].id)
    assert evaluate(run, {"a": 1}) == found  # ids and order are stable
    assert [v.message for v in evaluate(run, {"a": 2})] == ["about one", "with id", "careful"]


def test_a_configured_namespace_is_read_and_others_ignored(tmp_path: Path) -> None:
    run = _run(
        tmp_path,
        'package voltage.plan\n\nimport rego.v1\n\ndeny contains "mine" if { true }\n',
        'package main\n\nimport rego.v1\n\ndeny contains "not read" if { true }\n',
        namespace="voltage.plan",
    )
    assert [v.message for v in evaluate(run, {})] == ["mine"]


def _plan() -> Plan:
    change = Change(
        kind="wallet",
        key="vault",
        action=Action.CREATE,
        environment="production",
        name="Vault",
        mainnet=True,
        fields=(FieldChange("limit", None, 50_000_000_000),),
    )
    return Plan("s", "org", "voltage", "digest", changes=(change,))


def test_a_judged_plan_checksums_its_verdicts_and_overrides(tmp_path: Path) -> None:
    plain = _plan()
    body = plain.to_dict()
    assert "policy" not in body  # a plan without policies keeps the checksum it had
    run = load_policies([EXAMPLES / "mainnet_limit_cap.rego"])
    judged = judge(plain, run)
    assert judged.policy is not None
    assert [v.id for v in judged.policy.blocking()] == ["mainnet-limit-cap"]
    assert judged.checksum() != plain.checksum()
    overridden = judge(plain, dataclasses.replace(run, overrides=("mainnet-limit-cap",)))
    assert overridden.policy is not None and overridden.policy.blocking() == []
    assert overridden.checksum() != judged.checksum()
    # The saved document passes its own integrity check; an edited verdict does not.
    doc = overridden.to_dict()
    read_plan_document(doc, "plan.json")
    doc["policy"]["verdicts"][0]["type"] = "warn"
    with pytest.raises(Exception, match="does not match its checksum"):
        read_plan_document(doc, "plan.json")


def test_an_override_by_exact_message_works_too() -> None:
    run = load_policies([EXAMPLES / "mainnet_limit_cap.rego"])
    judged = judge(_plan(), run)
    assert judged.policy is not None
    message = judged.policy.verdicts[0].message
    by_message = judge(_plan(), dataclasses.replace(run, overrides=(message,)))
    assert by_message.policy is not None and by_message.policy.blocking() == []


# -- the reference check ---------------------------------------------------------------------


def test_the_reference_check_has_no_false_alarm_on_the_examples_and_common_forms() -> None:
    modules = [PolicyModule(p.name, p.read_text(), "main") for p in _rego_files()] + [
        PolicyModule(
            "forms.rego",
            "package main\n\nimport rego.v1\nimport data.lib.limits as caps\n\n"
            "# a comment naming ghost.field\n"
            "names := [c.key | some c in input.changes]\n"
            "by_key[k] := c if { some c in input.changes; k := c.key }\n"
            "f(x) := x.after\n"
            'deny contains "ghost.field here" if { every c in input.changes { c.mainnet } }\n'
            "deny contains m if { caps.max > 1; m := by_key.a.name; some i; input.changes[i].x }\n",
            "main",
        )
    ]
    assert unbound_references(modules) == []


def test_the_reference_check_names_the_unbound_head() -> None:
    module = PolicyModule(
        "typo.rego",
        "package main\n\nimport rego.v1\n\ndeny contains m if {\n"
        "\tsome change in input.changes\n\tm := chnage.key\n}\n",
        "main",
    )
    [issue] = unbound_references([module])
    assert (issue.file, issue.line, issue.column) == ("typo.rego", 7, 7)
    assert "`chnage` is not defined" in issue.message


def test_an_evaluation_that_grows_too_large_is_stopped(tmp_path: Path) -> None:
    run = _run(
        tmp_path,
        "package main\n\nimport rego.v1\n\ndeny contains msg if {\n"
        "  some i in numbers.range(1, 1000000000)\n  some j in numbers.range(1, 1000000000)\n"
        '  i + j < 0\n  msg := "never"\n}\n',
        timeout=30.0,
    )
    with pytest.raises(ConfigError, match="more than 100 MiB of memory"):
        evaluate(dataclasses.replace(run, memory_bytes=100 << 20), {})


# -- the gate is the engine's -----------------------------------------------------------------


def test_the_engine_refuses_a_deny_before_any_write_whoever_calls_it(tmp_path: Path) -> None:
    from tests.factories import desired, live, want
    from tests.fakes import FakeProvider
    from voltage_iac.engine import ApplyOptions, Engine
    from voltage_iac.errors import SafetyError, UsageError

    run = _run(
        tmp_path,
        "package main\n\nimport rego.v1\n\ndeny contains v if {\n"
        '  some c in input.changes\n  c.action == "create"\n'
        '  v := {"msg": "no new wallets today", "key": c.key, "id": "freeze"}\n}\n'
        'warn contains "a warning never blocks" if { true }\n',
    )
    provider = FakeProvider(lines=live().lines_of_credit)
    engine = Engine(desired(want("a")), provider)
    with pytest.raises(SafetyError, match="policy deny freeze: resource a: no new wallets"):
        engine.apply(ApplyOptions(policies=run))
    assert provider.calls == []
    # An override needs a review (a plan file or a reviewed checksum) ...
    overridden = dataclasses.replace(run, overrides=("freeze",))
    with pytest.raises(UsageError, match="only for a reviewed plan"):
        engine.apply(ApplyOptions(policies=overridden))
    assert provider.calls == []
    # ... and the reviewed checksum covers it: the plan made with the override applies.
    reviewed = engine.plan(policies=overridden)
    outcome = engine.apply(ApplyOptions(policies=overridden, checksum=reviewed.checksum()))
    assert outcome.report.ok and len(provider.calls) == 1
