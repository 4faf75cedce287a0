"""Policy as code end to end: the example Rego policies (examples/policies/) judge real
plans of the served emulator, in every format; a deny blocks apply before any write
unless a reviewed plan records an override; warnings never block; drift reports are
judged too; broken policy files are configuration errors naming file:line.

Writes are counted as the CLI sends them (respx passes every request through to the
served emulator and records it).
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import respx
import yaml
from markdown_it import MarkdownIt

from tests.conftest import Backend, config_doc, wallet
from voltage_iac.emulator.seed import DEMO_PRODUCTION_ENVIRONMENT_ID

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "policies"

served = pytest.mark.parametrize("backend", ["served"], indirect=True)

#: inside the example window (Tuesday to Thursday, 09:00-16:00 UTC): a Tuesday morning
INSIDE_WINDOW = "2026-12-01T10:30:00Z"
#: outside it: a Saturday
OUTSIDE_WINDOW = "2026-12-05T10:30:00Z"


def mainnet(name: str, **fields: Any) -> dict[str, Any]:
    entry = wallet(name, environment="production", line_of_credit="prod", **fields)
    entry.setdefault("metadata", {"cost-centre": "cc-7", "team": "treasury"})
    return entry


def good(name: str, **fields: Any) -> dict[str, Any]:
    return wallet(name, metadata={"cost-centre": "cc-1", "team": "payouts"}, **fields)


def write(
    backend: Backend, wallets: dict[str, Any], *, now: str = INSIDE_WINDOW, **extra: Any
) -> Path:
    """A configuration judged by every example policy, the clock pinned to `now`."""
    clock = backend.tmp / "clock.yaml"
    clock.write_text(yaml.safe_dump({"clock": {"now": now}}), encoding="utf-8")
    policies = {
        "paths": [str(EXAMPLES)],
        "data": [str(EXAMPLES / "window.json"), str(clock)],
    }
    return backend.write_config(config_doc(wallets, policies=policies, **extra))


@contextmanager
def counted_writes() -> Iterator[list[str]]:
    """Every non-GET request the CLI sends while the block runs (passed through)."""
    writes: list[str] = []
    with respx.mock(assert_all_called=False) as mock:
        mock.route().pass_through()
        try:
            yield writes
        finally:
            writes.extend(
                f"{call.request.method} {call.request.url.path}"
                for call in mock.calls
                if call.request.method != "GET"
            )


def plan_json(backend: Backend, path: Path, *flags: str) -> dict[str, Any]:
    result = backend.run("plan", str(path), "--format", "json", *flags)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def verdicts(doc: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    return [(v["type"], v["key"], v["id"]) for v in doc["policy"]["verdicts"]]


# -- the examples on real plans ------------------------------------------------------------


@served
def test_mainnet_limit_cap_blocks_apply_with_no_write_and_every_format_shows_it(
    backend: Backend,
) -> None:
    path = write(backend, {"vault": mainnet("Vault", limit="0.5 btc"), "ok": good("Fine")})

    doc = plan_json(backend, path)
    cap = [v for v in doc["policy"]["verdicts"] if v["id"] == "mainnet-limit-cap"]
    assert len(cap) == 1, doc["policy"]
    assert cap[0]["type"] == "deny" and cap[0]["key"] == "vault" and cap[0]["kind"] == "wallet"
    assert cap[0]["file"].endswith("mainnet_limit_cap.rego")
    assert "50000000000 msat" in cap[0]["message"]  # limits are msats in the plan JSON
    assert doc["policy"]["summary"] == {"deny": 1, "warn": 0, "overridden": 0}

    text = backend.run("plan", str(path), "--detailed-exitcode")
    assert text.exit_code == 2, text.output  # still 0/1/2: the verdicts are in the output
    assert "DENY wallet vault: mainnet limit" in text.stdout
    assert "apply refuses this plan" in text.stdout

    with counted_writes() as writes:
        refused = backend.run("apply", str(path), "--auto-approve")
    assert refused.exit_code == 5, refused.output
    assert "policy deny mainnet-limit-cap" in refused.stderr
    assert writes == []
    assert not [w for w in backend.wallets() if w["name"] in ("Vault", "Fine")]


@served
def test_markdown_shows_each_verdict_next_to_its_change_and_counts_on_top(
    backend: Backend,
) -> None:
    path = write(
        backend,
        {
            "vault": mainnet("Vault", limit="0.5 btc"),
            "untagged": wallet("Untagged", metadata={"cost-centre": "cc-2"}),
            "ok": good("Fine"),
        },
    )
    result = backend.run("plan", str(path), "--format", "markdown")
    assert result.exit_code == 0, result.output
    text = result.stdout
    banner = text.index("**Policy: 1 deny, 1 warn**")
    first_section = text.index("<details>")
    assert banner < first_section  # the counts are on top

    html = MarkdownIt("commonmark").enable("table").render(text)
    sections = {
        key: html.split(f"<b>{key}</b>", 1)[1].split("</details>", 1)[0]
        for key in ("vault", "untagged", "ok")
    }
    assert "mainnet limit 50000000000 msat is above the cap" in sections["vault"]
    assert "metadata.team is missing" in sections["untagged"]
    assert "WARN" in sections["untagged"] and "DENY" in sections["vault"]
    assert "policy" not in sections["ok"]
    assert "mainnet limit" not in sections["untagged"]


@served
def test_warnings_never_block_and_are_shown(backend: Backend) -> None:
    path = write(backend, {"untagged": wallet("Untagged", metadata={"cost-centre": "cc-2"})})
    doc = plan_json(backend, path)
    assert verdicts(doc)[0][:2] == ("warn", "untagged")
    applied = backend.run("apply", str(path), "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "WARN wallet untagged: metadata.team is missing" in applied.stdout
    assert any(w["name"] == "Untagged" and w["active"] for w in backend.wallets())


@served
def test_required_metadata_and_forbidden_networks(backend: Backend) -> None:
    doc_path = write(
        backend,
        {
            "nocc": wallet("No cost centre", metadata={"team": "x"}),
            "sbx": good("Sandbox", environment="sandbox", line_of_credit="prod"),
        },
    )
    # The demo's mainnet environment, named `sandbox` here: mainnet is forbidden there.
    config = yaml.safe_load(doc_path.read_text())
    config["environments"]["sandbox"] = config["environments"].pop("production")
    assert config["environments"]["sandbox"]["id"] == DEMO_PRODUCTION_ENVIRONMENT_ID
    doc_path.write_text(yaml.safe_dump(config))
    doc = plan_json(backend, doc_path)
    found = {
        (t, key): msg
        for (t, key, _), msg in zip(
            verdicts(doc), [v["message"] for v in doc["policy"]["verdicts"]], strict=True
        )
    }
    assert found[("deny", "nocc")] == "metadata.cost-centre is required (who pays for this wallet)"
    assert found[("deny", "sbx")] == "network mainnet is not allowed in environment sandbox"
    with counted_writes() as writes:
        assert backend.run("apply", str(doc_path), "--auto-approve").exit_code == 5
    assert writes == []


@served
def test_deletes_only_inside_the_window_given_by_a_pinned_clock(backend: Backend) -> None:
    wallets = {"a": good("Alpha"), "b": good("Bravo")}
    applied = backend.run("apply", str(write(backend, wallets)), "--auto-approve")
    assert applied.exit_code == 0, applied.output

    closed = write(backend, {"a": good("Alpha")}, now=OUTSIDE_WINDOW)
    doc = plan_json(backend, closed)
    assert [(t, k) for t, k, _ in verdicts(doc)] == [("deny", "b")]
    assert "delete outside the change window" in doc["policy"]["verdicts"][0]["message"]
    with counted_writes() as writes:
        refused = backend.run("apply", str(closed), "--auto-approve", "--allow-delete")
    assert refused.exit_code == 5, refused.output
    assert writes == []

    open_ = write(backend, {"a": good("Alpha")}, now=INSIDE_WINDOW)
    assert plan_json(backend, open_)["policy"]["verdicts"] == []
    deleted = backend.run("apply", str(open_), "--auto-approve", "--allow-delete")
    assert deleted.exit_code == 0, deleted.output
    assert not [w for w in backend.wallets() if w["name"] == "Bravo" and w["active"]]


# -- overrides ------------------------------------------------------------------------------


@served
def test_an_override_recorded_in_a_reviewed_plan_lets_the_deny_through(backend: Backend) -> None:
    path = write(backend, {"vault": mainnet("Vault", limit="0.5 btc")})
    plan_file = backend.tmp / "reviewed.json"
    made = backend.run(
        "plan", str(path), "--override-policy", "mainnet-limit-cap", "--out", str(plan_file)
    )
    assert made.exit_code == 0, made.output
    assert "OVERRIDDEN" in made.stdout
    recorded = json.loads(plan_file.read_text())["policy"]
    assert recorded["overrides"] == ["mainnet-limit-cap"]
    assert recorded["summary"]["overridden"] == 1

    # The override is the review's: not on the command line alone, not left out at apply.
    alone = backend.run(
        "apply", str(path), "--auto-approve", "--override-policy", "mainnet-limit-cap"
    )
    assert alone.exit_code == 3, alone.output
    with counted_writes() as writes:
        missing = backend.run("apply", str(path), "--plan", str(plan_file), "--auto-approve")
    assert missing.exit_code == 5, missing.output
    assert "policy overrides" in missing.stderr
    assert writes == []

    # An edited verdict or override in the plan file breaks its checksum.
    edited = json.loads(plan_file.read_text())
    edited["policy"]["overrides"] = ["something-else"]
    tampered = backend.tmp / "tampered.json"
    tampered.write_text(json.dumps(edited))
    bad = backend.run(
        "apply",
        str(path),
        "--plan",
        str(tampered),
        "--auto-approve",
        "--override-policy",
        "something-else",
    )
    assert bad.exit_code == 5, bad.output
    assert "does not match its checksum" in bad.stderr

    ok = backend.run(
        "apply",
        str(path),
        "--plan",
        str(plan_file),
        "--auto-approve",
        "--override-policy",
        "mainnet-limit-cap",
    )
    assert ok.exit_code == 0, ok.output
    assert any(w["name"] == "Vault" for w in _all_wallets(backend))


def _all_wallets(backend: Backend) -> list[dict[str, Any]]:
    assert backend.api is not None
    from voltage_iac.emulator.seed import DEMO_ORGANIZATION_ID

    answer = backend.api.get(
        f"/organizations/{DEMO_ORGANIZATION_ID}/wallets",
        params={"environment_id": DEMO_PRODUCTION_ENVIRONMENT_ID},
    )
    answer.raise_for_status()
    return list(answer.json())


@served
def test_a_reviewed_plan_goes_stale_when_a_verdict_changes(backend: Backend) -> None:
    wallets = {"a": good("Alpha"), "b": good("Bravo")}
    assert backend.run("apply", str(write(backend, wallets)), "--auto-approve").exit_code == 0
    inside = write(backend, {"a": good("Alpha")}, now=INSIDE_WINDOW)
    plan_file = backend.tmp / "reviewed.json"
    assert backend.run("plan", str(inside), "--out", str(plan_file)).exit_code == 0
    # Applied after the window closed: the verdicts differ, so the review is stale.
    closed = write(backend, {"a": good("Alpha")}, now=OUTSIDE_WINDOW)
    with counted_writes() as writes:
        late = backend.run(
            "apply", str(closed), "--plan", str(plan_file), "--auto-approve", "--allow-delete"
        )
    assert late.exit_code == 5, late.output
    assert "policy: new deny verdict" in late.stderr
    assert writes == []


# -- drift -------------------------------------------------------------------------------------


DRIFT_POLICY = """package main

import rego.v1

deny contains msg if {
	some notice in input.notices
	notice.finding == "unmanaged"
	msg := sprintf("unmanaged %s %s in a managed environment", [notice.kind, notice.subject])
}
"""


@served
def test_deny_verdicts_on_the_drift_report_exit_2(backend: Backend) -> None:
    path = backend.write_config(config_doc({"a": good("Alpha")}))
    assert backend.run("apply", str(path), "--auto-approve").exit_code == 0
    assert backend.run("drift", str(path)).exit_code == 0  # in sync; the seed's legacy wallet
    policy = backend.tmp / "drift.rego"
    policy.write_text(DRIFT_POLICY)
    judged = backend.run("drift", str(path), "--policy", str(policy), "--format", "json")
    assert judged.exit_code == 2, judged.output
    assert json.loads(judged.stdout)["in_sync"] is True  # the report itself is unchanged
    assert "DENY unmanaged wallet Legacy treasury" in judged.stderr

    # A CI test report shows why the job failed: each deny is a failing test case.
    junit = backend.run("drift", str(path), "--policy", str(policy), "--format", "junit")
    assert junit.exit_code == 2, junit.output
    root = ET.fromstring(junit.stdout)
    [failure] = root.iter("failure")
    assert failure.get("type") == "policy"
    assert "unmanaged wallet Legacy treasury" in (failure.get("message") or "")
    assert root.get("failures") == "1"


DRIFT_WARN = """package main

import rego.v1

warn contains msg if {
	input.in_sync
	msg := "in sync, as it should be"
}
"""


def _policy_cases(suite: ET.Element, stack: str) -> list[tuple[str | None, list[Any]]]:
    """A JUnit suite's policy verdict cases: name, and each child's tag, message, text."""
    return [
        (case.get("name"), [(e.tag, e.get("message"), e.text) for e in case])
        for case in suite.iter("testcase")
        if case.get("classname") == f"voltage-iac.{stack}.policy"
    ]


@served
def test_several_stacks_drift_junit_fails_only_the_denied_stacks_suite(backend: Backend) -> None:
    """Each stack's own `policies:` judge its report; the JUnit report shows each stack's
    verdicts in its own suite as one stack's report does: a deny fails B's suite only."""
    (backend.tmp / "drift.rego").write_text(DRIFT_POLICY)
    (backend.tmp / "warn.rego").write_text(DRIFT_WARN)
    folders = {}
    for stack, name, policy in (("alpha", "Alpha", "warn.rego"), ("bravo", "Bravo", "drift.rego")):
        folder = backend.tmp / stack
        folder.mkdir()
        policies = {"paths": [str(backend.tmp / policy)]}
        doc = config_doc({stack[0]: good(name)}, stack=stack, policies=policies)
        (folder / "wallets.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
        folders[stack] = str(folder)
    applied = backend.run("apply", *folders.values(), "--auto-approve")
    assert applied.exit_code == 0, applied.output

    junit = backend.run("drift", *folders.values(), "--format", "junit")
    # Both reports are in sync; bravo's deny makes it, and so the command, exit 2.
    assert junit.exit_code == 2, junit.output
    assert "Stack bravo:" in junit.stderr and "DENY unmanaged wallet Legacy" in junit.stderr
    root = ET.fromstring(junit.stdout)
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    alpha = suites["voltage-iac drift (alpha)"]
    bravo = suites["voltage-iac drift (bravo)"]
    # alpha's warn is a passing case with its message; alpha's suite does not fail
    assert alpha.get("failures") == "0" and list(alpha.iter("failure")) == []
    [(name, children)] = _policy_cases(alpha, "alpha")
    assert (name or "").startswith("warn ")
    assert children == [("system-out", None, "in sync, as it should be")]
    [failure] = bravo.iter("failure")
    assert failure.get("type") == "policy"
    assert "unmanaged wallet Legacy treasury" in (failure.get("message") or "")
    assert bravo.get("failures") == "1"
    assert bravo.get("tests") == str(len(list(bravo.iter("testcase"))))
    assert root.get("failures") == "1"
    assert root.get("tests") == str(sum(int(s.get("tests", "")) for s in suites.values()))

    # Each stack judged alone gives the same verdict cases as its suite here.
    for stack, folder in folders.items():
        alone = backend.run("drift", folder, "--format", "junit")
        [suite] = ET.fromstring(alone.stdout).findall("testsuite")
        assert _policy_cases(suite, stack) == _policy_cases(
            suites[f"voltage-iac drift ({stack})"], stack
        )


# -- broken policies -------------------------------------------------------------------------


@served
@pytest.mark.parametrize(
    ("source", "where", "what"),
    [
        ("package main\n\ndeny contains msg if {\n  msg := \n}\n", ":4:7", "Invalid"),
        (
            "package main\n\nimport rego.v1\n\ndeny contains msg if {\n"
            "  some c in input.changes\n  msg := chnage.key\n}\n",
            ":7:10",
            "`chnage` is not defined",
        ),
        (
            "package main\n\nimport rego.v1\n\ndeny contains msg if {\n"
            '  msg := sprintf_typo("%v", [1])\n}\n',
            ":6:10",
            "`sprintf_typo` is not defined",
        ),
        ('package other\n\ndeny contains "x" if { true }\n', "", "declares `package main`"),
        ("package main\n\ndeny contains 42 if { true }\n", "", "must be a string or an object"),
    ],
    ids=["syntax", "unbound-variable", "unknown-function", "no-main-package", "bad-message"],
)
def test_broken_policy_files_are_configuration_errors_with_file_and_line(
    backend: Backend, source: str, where: str, what: str
) -> None:
    policy = backend.tmp / "broken.rego"
    policy.write_text(source)
    path = backend.write_config(config_doc({"a": good("Alpha")}))
    for command in (["plan"], ["apply", "--auto-approve"]):
        with counted_writes() as writes:
            result = backend.run(command[0], str(path), "--policy", str(policy), *command[1:])
        assert result.exit_code == 3, result.output
        assert "Traceback" not in result.output and "unexpected" not in result.stderr
        assert f"broken.rego{where}" in result.stderr, result.stderr
        assert what in result.stderr, result.stderr
        assert writes == []


def test_a_data_or_yaml_file_given_as_a_policy_names_the_fix(backend: Backend) -> None:
    path = backend.write_config(config_doc({"a": good("Alpha")}))
    for wrong in (path, EXAMPLES / "window.json"):
        result = backend.run("plan", str(path), "--policy", str(wrong))
        assert result.exit_code == 3, result.output
        assert "a policy must be a .rego file" in result.stderr
        assert "fix:" in result.stderr and "policies.data" in result.stderr, result.stderr


@served
def test_a_policy_that_loops_is_stopped_at_its_time_limit(backend: Backend) -> None:
    rules = backend.tmp / "rules"
    rules.mkdir()
    (rules / "loop.rego").write_text(
        "package main\n\nimport rego.v1\n\nr := numbers.range(1, 400)\n\n"
        "deny contains msg if {\n  some a in r\n  some b in r\n  some c in r\n  some d in r\n"
        '  some e in r\n  a + b + c + d + e < 0\n  msg := "never"\n}\n'
    )
    path = backend.write_config(
        config_doc({"a": good("Alpha")}, policies={"paths": ["rules"], "timeout": 1})
    )
    result = backend.run("plan", str(path))
    assert result.exit_code == 3, result.output
    assert "took longer than 1s" in result.stderr
    assert "rules/loop.rego" in result.stderr


def test_policy_paths_in_the_configuration_are_checked_where_they_are_written(
    tmp_path: Path,
) -> None:
    from voltage_iac.config import load_config
    from voltage_iac.errors import ConfigError

    config = tmp_path / "wallets.yaml"
    doc = config_doc({"a": good("Alpha")}, policies=["policies/missing.rego", "here.yaml"])
    (tmp_path / "here.yaml").write_text("{}")
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    text = str(caught.value)
    lines = config.read_text().splitlines()
    line = next(i for i, t in enumerate(lines, 1) if "policies/missing.rego" in t)
    assert f"wallets.yaml:{line}" in text and "no such policy file" in text
    assert "here.yaml is not a .rego file" in text

    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.rego").write_text("package main\n")
    for spelling in (["policies"], {"paths": ["policies/p.rego"], "namespace": "main"}):
        config.write_text(yaml.safe_dump(config_doc({"a": good("Alpha")}, policies=spelling)))
        settings = load_config(config).policies
        assert settings.namespace == "main"
        first = Path(settings.paths[0]).resolve()
        assert first.is_relative_to((tmp_path / "policies").resolve())


@served
def test_a_plan_file_alone_is_judged_again_by_the_policies_it_was_planned_with(
    backend: Backend,
) -> None:
    # policies from the configuration: the file records them, with the review's override
    path = write(backend, {"vault": mainnet("Vault", limit="0.5 btc")})
    plan_file = backend.tmp / "reviewed.json"
    made = backend.run(
        "plan", str(path), "--override-policy", "mainnet-limit-cap", "--out", str(plan_file)
    )
    assert made.exit_code == 0, made.output
    path.unlink()  # the apply has the plan file only
    ok = backend.run(
        "apply", str(plan_file), "--auto-approve", "--override-policy", "mainnet-limit-cap"
    )
    assert ok.exit_code == 0, ok.output
    assert any(w["name"] == "Vault" for w in _all_wallets(backend))

    # policies from --policy only: recorded too, so the deny still blocks the file alone
    plain = backend.write_config(config_doc({"vault2": mainnet("Vault 2", limit="0.5 btc")}))
    second = backend.tmp / "second.json"
    made = backend.run(
        "plan",
        str(plain),
        "--policy",
        str(EXAMPLES / "mainnet_limit_cap.rego"),
        "--out",
        str(second),
    )
    assert made.exit_code == 0, made.output
    with counted_writes() as writes:
        refused = backend.run("apply", str(second), "--auto-approve")
    assert refused.exit_code == 5, refused.output
    assert "policy deny mainnet-limit-cap" in refused.stderr
    assert "stale" not in refused.stderr
    assert writes == []


@served
def test_each_stack_of_a_several_stack_apply_is_judged_by_its_own_policies(
    backend: Backend,
) -> None:
    # The engine applies a configuration's policies for every caller: a stack run among
    # others is gated as when run alone.
    guarded_dir, plain_dir = backend.tmp / "guarded", backend.tmp / "plain"
    guarded_dir.mkdir()
    plain_dir.mkdir()
    guarded = write(backend, {"vault": mainnet("Vault", limit="0.5 btc")}, stack="guarded")
    guarded.rename(guarded_dir / "wallets.yaml")
    plain_doc = config_doc({"small": good("Small")}, stack="plain")
    (plain_dir / "wallets.yaml").write_text(yaml.safe_dump(plain_doc), encoding="utf-8")

    result = backend.run("apply", str(guarded_dir), str(plain_dir), "--auto-approve")
    assert result.exit_code == 5, result.output  # the most severe: the guarded stack's
    assert "policy deny mainnet-limit-cap" in result.output
    assert not [w for w in _all_wallets(backend) if w["name"] == "Vault"]
    assert any(w["name"] == "Small" for w in backend.wallets())


def test_show_of_a_plan_file_judged_by_policies_prints_it_as_plan_did(backend: Backend) -> None:
    # A reviewer runs `show` on the plan file of a stack with policies: it must print the
    # plan and its verdicts as `plan` did, not refuse the file as unreadable.
    path = write(backend, {"vault": mainnet("Vault", limit="0.5 btc"), "a": wallet("Alpha")})
    plan_file = backend.tmp / "reviewed.json"
    made = backend.run(
        "plan", str(path), "--override-policy", "mainnet-limit-cap", "--out", str(plan_file)
    )
    assert made.exit_code == 0, made.output
    for fmt in ("text", "json", "markdown"):
        planned = backend.run(
            "plan", str(path), "--override-policy", "mainnet-limit-cap", "--format", fmt
        )
        shown = backend.run("show", str(plan_file), "--format", fmt)
        assert shown.exit_code == 0, shown.output
        assert shown.stdout == planned.stdout, fmt
    assert "OVERRIDDEN" in backend.run("show", str(plan_file)).stdout


def test_a_plan_file_applied_from_another_directory_says_where_its_policies_are(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file records policy paths relative to where `plan` ran: from elsewhere apply
    # refuses (nothing written), and the fix names that directory rule.
    rules = tmp_path / "repo" / "policies"
    shutil.copytree(EXAMPLES, rules)
    monkeypatch.chdir(tmp_path / "repo")
    path = backend.write_config(config_doc({"a": good("Alpha")}, policies=[str(rules)]))
    plan_file = tmp_path / "repo" / "plan.json"
    assert backend.run("plan", str(path), "--out", str(plan_file)).exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with counted_writes() as writes:
        result = backend.run("apply", str(plan_file), "--auto-approve")
    assert result.exit_code == 3, result.output
    said = " ".join(result.stderr.split())
    assert "do not exist: policies (policies)" in said
    assert "names paths relative to the directory `plan` ran in" in said
    assert "run apply from the directory `plan --out` ran in" in said
    assert writes == []
