"""The CI recipes of examples/ci/, run for real against a served emulator.

The shell script's three steps (plan, apply, drift) run as they would in any CI system,
with environment variables pointing them at the emulator. The GitHub Actions workflow is
parsed, and every step that runs voltage-iac is executed by bash the way GitHub runs it
(`bash -eo pipefail`), with `$GITHUB_OUTPUT` and `$GITHUB_STEP_SUMMARY` as files.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import REPO, TEST_KEY, config_doc, wallet
from voltage_iac.cli import cli
from voltage_iac.emulator.seed import DEMO_ORGANIZATION_ID
from voltage_iac.render.markdown import MARKER

SCRIPT = REPO / "examples" / "ci" / "voltage-iac-ci.sh"
WORKFLOW = REPO / "examples" / "ci" / "github-actions.yml"
STEP_TIMEOUT = 120


@dataclass
class World:
    base_url: str
    workspace: Path
    env: dict[str, str]
    api: httpx.Client

    def owned(self) -> dict[str, dict[str, Any]]:
        answer = self.api.get(f"/organizations/{DEMO_ORGANIZATION_ID}/wallets")
        answer.raise_for_status()
        return {
            w["metadata"]["voltage-iac.key"]: w
            for w in answer.json()
            if w["active"] and (w.get("metadata") or {}).get("voltage-iac.stack") == "e2e"
        }

    def rename(self, key: str, name: str) -> None:
        wallet_id = self.owned()[key]["id"]
        path = f"/organizations/{DEMO_ORGANIZATION_ID}/wallets/{wallet_id}"
        assert self.api.patch(path, json={"name": name}).status_code == 202
        deadline = time.monotonic() + 10
        while self.api.get(path).json()["name"] != name:
            assert time.monotonic() < deadline, f"rename of {key} did not show"
            time.sleep(0.02)


@pytest.fixture
def world(served_emulator: tuple[str, str], tmp_path: Path) -> Iterator[World]:
    base_url, _admin = served_emulator
    workspace = tmp_path / "workspace"
    (workspace / "wallets").mkdir(parents=True)
    doc = config_doc(
        {"a": wallet("Alpha"), "b": wallet("Bravo")}, ignore=["Legacy treasury:unmanaged"]
    )
    (workspace / "wallets" / "wallets.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOLTAGE_", "GITHUB_"))}
    env.update(
        {
            # voltage-iac from this checkout, found on PATH as in CI after installing it.
            "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
            "VOLTAGE_API_URL": base_url,
            "VOLTAGE_API_KEY": TEST_KEY,
            "NO_COLOR": "1",
        }
    )
    with httpx.Client(base_url=base_url, headers={"x-api-key": TEST_KEY}) as api:
        yield World(base_url, workspace, env, api)


# -- the POSIX shell script -------------------------------------------------------------------


def _script(world: World, step: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(SCRIPT), step, "wallets"],
        cwd=world.workspace,
        env={**world.env, **env},
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )


def test_shell_script_plan_apply_drift_against_the_emulator(world: World) -> None:
    out = world.workspace / "voltage-iac-out"

    plan = _script(world, "plan")
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.splitlines()[-1].startswith("voltage-iac-ci: plan has changes")
    assert "Plan: 2 to add, 0 to change, 0 to replace, 0 to destroy." in plan.stdout
    assert (out / "plan.md").read_text(encoding="utf-8").startswith(MARKER + "\n")
    assert stat.S_IMODE((out / "plan.json").stat().st_mode) == 0o600
    assert TEST_KEY not in (out / "plan.json").read_text(encoding="utf-8")

    apply = _script(world, "apply")
    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert {k: w["name"] for k, w in world.owned().items()} == {"a": "Alpha", "b": "Bravo"}

    drift = _script(world, "drift")
    assert drift.returncode == 0, drift.stdout + drift.stderr
    assert drift.stdout.splitlines()[-1] == "voltage-iac-ci: in sync"
    suite = ET.parse(out / "drift.xml").getroot()
    assert suite.get("failures") == "0" and suite.get("tests") == "3"

    world.rename("a", "Alpha by hand")
    drift = _script(world, "drift")
    assert drift.returncode == 2, drift.stdout + drift.stderr
    assert "`name` changed" in (out / "drift.md").read_text(encoding="utf-8")
    failures = [
        c.get("name")
        for c in ET.parse(out / "drift.xml").getroot().iter("testcase")
        if c.find("failure") is not None
    ]
    assert failures == ["a"]

    # A plan made, then overtaken by a change of the live wallets: apply refuses, exit 5.
    assert _script(world, "plan").returncode == 0
    world.rename("b", "Bravo by hand")
    stale = _script(world, "apply")
    assert stale.returncode == 5, stale.stdout + stale.stderr
    assert "stale" in stale.stderr and "make a new plan and have it reviewed" in stale.stderr
    assert world.owned()["a"]["name"] == "Alpha by hand"

    assert _script(world, "plan").returncode == 0
    assert _script(world, "apply").returncode == 0
    assert _script(world, "drift").returncode == 0
    assert {k: w["name"] for k, w in world.owned().items()} == {"a": "Alpha", "b": "Bravo"}


def test_shell_script_errors_keep_their_exit_codes(world: World) -> None:
    wrong = {"VOLTAGE_API_KEY": "wrong-key-123456"}
    for step in ("plan", "drift"):
        result = _script(world, step, **wrong)
        assert result.returncode == 4, (step, result.stdout, result.stderr)
        assert "wrong-key-123456" not in result.stdout + result.stderr
    missing = _script(world, "apply")  # no plan step ran
    assert missing.returncode == 3 and "run the plan step first" in missing.stderr
    usage = _script(world, "destroy")
    assert usage.returncode == 3 and "usage:" in usage.stderr
    (world.workspace / "wallets" / "broken.yaml").write_text("version: 1\nwallets: [\n")
    assert _script(world, "drift").returncode == 3


# -- the GitHub Actions workflow ----------------------------------------------------------------


def _workflow() -> dict[Any, Any]:
    return dict(yaml.safe_load(WORKFLOW.read_text(encoding="utf-8")))


def _step(job: dict[str, Any], name: str) -> dict[str, Any]:
    [step] = [s for s in job["steps"] if s.get("name") == name]
    return dict(step)


def _uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith(action + "@")]


# What the expressions of the steps that run voltage-iac stand for in this test.
EXPRESSIONS = {
    "secrets.VOLTAGE_API_KEY": TEST_KEY,
    "contains(github.event.pull_request.labels.*.name, 'voltage-iac: allow-delete') "
    "&& '--allow-delete' || ''": "",
    "contains(github.event.pull_request.labels.*.name, 'voltage-iac: allow-replace') "
    "&& '--allow-replace' || ''": "",
}


def _expand(value: Any) -> str:
    def one(match: re.Match[str]) -> str:
        expression = " ".join(match.group(1).split())
        assert expression in EXPRESSIONS, f"expression not known to the test: {expression}"
        return EXPRESSIONS[expression]

    return re.sub(r"\$\{\{(.*?)\}\}", one, str(value), flags=re.DOTALL)


@dataclass
class StepRun:
    returncode: int
    output: str
    outputs: dict[str, str]
    summary: str


def _run_step(world: World, job_name: str, step_name: str, **env: str) -> StepRun:
    doc = _workflow()
    job = doc["jobs"][job_name]
    step = _step(job, step_name)
    merged = {**world.env}
    for scope in (doc.get("env", {}), job.get("env", {}), step.get("env", {})):
        merged.update({k: _expand(v) for k, v in scope.items()})
    merged.update(env)
    github_output = world.workspace.parent / "github-output"
    summary = world.workspace.parent / "step-summary"
    github_output.write_text("")
    summary.write_text("")
    merged.update({"GITHUB_OUTPUT": str(github_output), "GITHUB_STEP_SUMMARY": str(summary)})
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", _expand(step["run"])],
        cwd=world.workspace,
        env=merged,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )
    outputs = dict(
        line.split("=", 1) for line in github_output.read_text().splitlines() if "=" in line
    )
    return StepRun(result.returncode, result.stdout + result.stderr, outputs, summary.read_text())


def _voltage_iac_commands(script: str) -> list[list[str]]:
    """Every voltage-iac invocation of a step script, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", script)
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "voltage-iac":
            cut = next((i for i, w in enumerate(words) if w in (">", "2>", "||", "&&", "|")), None)
            commands.append(words[1:cut])
    return commands


def test_workflow_shape() -> None:
    doc = _workflow()
    triggers = doc[True]  # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"pull_request", "schedule", "workflow_dispatch"}
    assert "closed" in triggers["pull_request"]["types"] and triggers["schedule"][0]["cron"]
    plan, apply, drift = doc["jobs"]["plan"], doc["jobs"]["apply"], doc["jobs"]["drift"]

    # One pull-request comment, found by the marker the Markdown plan starts with.
    [comment] = _uses(plan, "actions/github-script")
    script = comment["with"]["script"]
    assert f"const marker = '{MARKER}';" in script
    assert "startsWith(marker)" in script
    assert "updateComment" in script and "createComment" in script
    assert plan["permissions"]["pull-requests"] == "write"
    [artifact] = _uses(plan, "actions/upload-artifact")
    assert artifact["with"]["path"] == "voltage-iac-plan.json"

    # The apply downloads that same artifact and applies it with --plan.
    [download] = _uses(apply, "actions/download-artifact")
    assert download["with"]["name"] == artifact["with"]["name"]
    assert "merged" in apply["if"] and apply["concurrency"]["cancel-in-progress"] is False
    assert _voltage_iac_commands(_step(apply, "Apply the reviewed plan")["run"])[0][2:4] == [
        "--plan",
        "voltage-iac-plan.json",
    ]

    # Drift: Markdown to the job summary, JUnit published, exit 2 handled explicitly.
    check = _step(drift, "Check drift")["run"]
    assert 'cat drift.md >> "$GITHUB_STEP_SUMMARY"' in check
    assert '[ "$code" -eq 2 ]' in check
    [junit] = _uses(drift, "mikepenz/action-junit-report")
    assert junit["with"]["report_paths"] == "drift-junit.xml"
    assert _step(drift, "Fail on drift")["if"] == "steps.drift.outputs.drift == 'true'"

    # Every voltage-iac command line is one the CLI accepts.
    commands = [
        command
        for job in doc["jobs"].values()
        for step in job["steps"]
        if "run" in step
        for command in _voltage_iac_commands(step["run"])
    ]
    assert sorted({c[0] for c in commands}) == ["apply", "drift", "plan"]
    for command in commands:
        sub = cli.commands[command[0]]
        names = {opt for param in sub.params for opt in getattr(param, "opts", [])}
        for word in command[1:]:
            if word.startswith("--"):
                assert word in names, f"voltage-iac {command[0]} has no option {word}"


def test_workflow_steps_run_against_the_emulator(world: World) -> None:
    plan = _run_step(world, "plan", "Plan")
    assert plan.returncode == 0, plan.output
    assert plan.outputs == {"exit-code": "2", "changes": "true"}
    comment = (world.workspace / "voltage-iac-plan.md").read_text(encoding="utf-8")
    assert comment.startswith(MARKER + "\n") and "Plan: 2 to add" in comment
    assert plan.summary == comment
    plan_file = world.workspace / "voltage-iac-plan.json"
    assert stat.S_IMODE(plan_file.stat().st_mode) == 0o600

    apply = _run_step(world, "apply", "Apply the reviewed plan")
    assert apply.returncode == 0, apply.output
    assert "Apply complete: 2 done, 0 failed, 0 not started." in apply.output
    assert set(world.owned()) == {"a", "b"}

    again = _run_step(world, "plan", "Plan")
    assert again.outputs == {"exit-code": "0", "changes": "false"}
    drift = _run_step(world, "drift", "Check drift")
    assert drift.returncode == 0, drift.output
    assert drift.outputs == {"drift": "false"} and "**in sync**" in drift.summary

    world.rename("a", "Alpha by hand")
    drift = _run_step(world, "drift", "Check drift")
    assert drift.returncode == 0, drift.output  # the reports are published first...
    assert drift.outputs == {"drift": "true"} and "Alpha by hand" in drift.summary
    junit = ET.parse(world.workspace / "drift-junit.xml").getroot()
    assert junit.get("failures") == "1"
    fail = _run_step(world, "drift", "Fail on drift")
    assert fail.returncode == 2 and "drift found" in fail.output  # ...then the job fails

    # A reviewed plan overtaken by a live change is refused on merge.
    assert _run_step(world, "plan", "Plan").outputs["changes"] == "true"
    world.rename("b", "Bravo by hand")
    stale = _run_step(world, "apply", "Apply the reviewed plan")
    assert stale.returncode == 5, stale.output
    assert "::error::apply refused (exit 5)" in stale.output
    assert world.owned()["a"]["name"] == "Alpha by hand"


def test_workflow_errors_are_reported_as_errors(world: World) -> None:
    wrong = {"VOLTAGE_API_KEY": "wrong-key-123456"}
    plan = _run_step(world, "plan", "Plan", **wrong)
    assert plan.returncode == 0, plan.output  # the comment step still runs...
    assert plan.outputs == {"exit-code": "4"}  # ...and the next step fails the job
    comment = (world.workspace / "voltage-iac-plan.md").read_text(encoding="utf-8")
    assert comment.startswith(MARKER + "\n### voltage-iac plan failed (exit 4)")
    assert "wrong-key-123456" not in comment + plan.output
    assert not (world.workspace / "voltage-iac-plan.json").exists()

    drift = _run_step(world, "drift", "Check drift", **wrong)
    assert drift.returncode == 4, drift.output
    assert "this is an error, not drift" in drift.output and drift.outputs == {}
