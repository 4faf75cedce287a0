"""The CI recipes of examples/ci/, run for real against a served emulator.

The shell script's three steps (plan, apply, drift) run as they would in any CI system,
with environment variables pointing them at the emulator. The GitHub Actions workflow is
parsed, and its steps run the way GitHub runs them: `run:` steps by bash
(`bash -eo pipefail`), `uses:` steps of the voltage-iac action through the action's own
steps (tests/test_action.py), each matrix job in its own workspace, artifacts carried
between jobs as files, and the comment script by Node.js with a stand-in for GitHub's
API. actionlint lints the workflow, shellcheck every shell script of the recipes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import REPO, TEST_KEY, config_doc, wallet
from tests.test_action import (
    ACTION,
    IN_CI,
    actionlint,
    expand,
    read_outputs,
    run_action,
    run_bash,
    shellcheck_script,
)
from voltage_iac.cli import cli
from voltage_iac.emulator.seed import DEMO_ORGANIZATION_ID
from voltage_iac.render.markdown import MARKER

SCRIPT = REPO / "examples" / "ci" / "voltage-iac-ci.sh"
WORKFLOW = REPO / "examples" / "ci" / "github-actions.yml"
STEP_TIMEOUT = 120
# Two stacks, each in an environment of its own (wallets of another stack in a managed
# environment would be drift).
STACKS = {
    "payments": {"a": wallet("Alpha"), "b": wallet("Bravo")},
    "treasury": {"t": wallet("Treasury reserve", environment="production", line_of_credit="prod")},
}
STACK_ENVIRONMENT = {"payments": ("staging", "main"), "treasury": ("production", "prod")}


def _stack_doc(stack: str, wallets: dict[str, Any]) -> dict[str, Any]:
    doc = config_doc(wallets, stack=stack, ignore=["Legacy treasury:unmanaged"])
    environment, line = STACK_ENVIRONMENT[stack]
    doc["environments"] = {environment: doc["environments"][environment]}
    doc["lines_of_credit"] = {line: doc["lines_of_credit"][line]}
    return doc


@dataclass
class World:
    base_url: str
    workspace: Path
    env: dict[str, str]
    api: httpx.Client

    def owned(self, stack: str = "e2e") -> dict[str, dict[str, Any]]:
        answer = self.api.get(f"/organizations/{DEMO_ORGANIZATION_ID}/wallets")
        answer.raise_for_status()
        return {
            w["metadata"]["voltage-iac.key"]: w
            for w in answer.json()
            if w["active"] and (w.get("metadata") or {}).get("voltage-iac.stack") == stack
        }

    def rename(self, key: str, name: str, stack: str = "e2e") -> None:
        wallet_id = self.owned(stack)[key]["id"]
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
    # The workflow's layout: one directory per stack.
    for stack, wallets in STACKS.items():
        (workspace / "stacks" / stack).mkdir(parents=True)
        text = yaml.safe_dump(_stack_doc(stack, wallets))
        (workspace / "stacks" / stack / "wallets.yaml").write_text(text, encoding="utf-8")
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


def test_shell_script_applies_the_plan_file_alone(world: World) -> None:
    out = world.workspace / "voltage-iac-out"
    assert _script(world, "plan").returncode == 0
    # The text plan is the saved file shown: it ends with the file's own checksum.
    checksum = json.loads((out / "plan.json").read_text(encoding="utf-8"))["checksum"]
    text = (out / "plan.txt").read_text(encoding="utf-8")
    assert text.splitlines()[-1] == f"Plan checksum: {checksum}"
    shutil.rmtree(world.workspace / "wallets")  # the reviewed file is all apply gets
    apply = subprocess.run(
        ["sh", str(SCRIPT), "apply"],
        cwd=world.workspace,
        env=world.env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )
    assert apply.returncode == 0, apply.stdout + apply.stderr
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


def _is_voltage_iac(step: dict[str, Any]) -> bool:
    return str(step.get("uses", "")).split("@")[0].endswith("/voltage-iac")


HEAD_SHA = "4f2e0c1d9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e"
ALLOW_DELETE = (
    "contains(github.event.pull_request.labels.*.name, 'voltage-iac: allow-delete') "
    "&& '--allow-delete' || ''"
)
ALLOW_REPLACE = ALLOW_DELETE.replace("delete", "replace")


@dataclass
class StepRun:
    returncode: int
    output: str
    outputs: dict[str, str]


@dataclass
class Job:
    """One job of the workflow (one matrix entry) in a workspace of its own."""

    world: World
    name: str
    stack: str
    labels: tuple[str, ...] = ()
    steps: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        jobs = self.world.workspace.parent / "jobs"
        jobs.mkdir(exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-{self.stack}-", dir=jobs))
        self.workspace = self.dir / "workspace"
        # actions/checkout: the repository's files.
        shutil.copytree(self.world.workspace / "stacks", self.workspace / "stacks")
        self.summary = self.dir / "step-summary"
        self.summary.write_text("")

    def known(self) -> dict[str, str]:
        return {
            "matrix.stack": self.stack,
            "secrets.VOLTAGE_API_KEY": self.world.env["VOLTAGE_API_KEY"],
            "github.event.pull_request.head.sha": HEAD_SHA,
            ALLOW_DELETE: "--allow-delete" if "voltage-iac: allow-delete" in self.labels else "",
            ALLOW_REPLACE: "--allow-replace" if "voltage-iac: allow-replace" in self.labels else "",
        }

    def run(self, step_name: str, **env: str) -> StepRun:
        doc = _workflow()
        job = doc["jobs"][self.name]
        step = _step(job, step_name)
        known = self.known()
        merged = {**self.world.env}
        for scope in (doc.get("env", {}), job.get("env", {}), step.get("env", {})):
            merged.update({k: expand(v, known, self.steps) for k, v in scope.items()})
        merged.update(env)
        if _is_voltage_iac(step):
            inputs = {k: expand(v, known, self.steps) for k, v in step["with"].items()}
            action = run_action(
                inputs,
                cwd=self.workspace,
                env=merged,
                runner_temp=self.dir / "runner-temp",
                summary=self.summary,
            )
            result = StepRun(action.returncode, action.log, action.outputs)
        else:
            github_output = self.dir / "github-output"
            github_output.write_text("")
            merged.update(
                {"GITHUB_OUTPUT": str(github_output), "GITHUB_STEP_SUMMARY": str(self.summary)}
            )
            done = run_bash(expand(step["run"], known, self.steps), cwd=self.workspace, env=merged)
            result = StepRun(
                done.returncode, done.stdout + done.stderr, read_outputs(github_output)
            )
        if "id" in step:
            self.steps[step["id"]] = result.outputs
        return result


def _plan(world: World, stack: str, **env: str) -> Job:
    job = Job(world, "plan", stack)
    plan = job.run("Plan", **env)
    assert plan.outputs["exit-code"] in ("0", "2") or env, plan.output
    part = job.run("Write this stack's part of the comment")
    assert part.returncode == 0, part.output
    return job


def _apply(world: World, stack: str, reviewed: Job, *labels: str) -> tuple[Job, StepRun]:
    job = Job(world, "apply", stack, labels)
    # actions/download-artifact: the plan file the plan job kept.
    shutil.copy(reviewed.workspace / "voltage-iac-plan.json", job.workspace)
    return job, job.run("Apply the reviewed plan")


def _comment_job(world: World, *plans: Job) -> Job:
    job = Job(world, "comment", "all")
    # actions/download-artifact with merge-multiple: every stack's part in one folder.
    (job.workspace / "voltage-iac-comment").mkdir()
    for plan in plans:
        for part in (plan.workspace / "voltage-iac-comment").iterdir():
            shutil.copy(part, job.workspace / "voltage-iac-comment")
    made = job.run("Put the stacks' plans in one comment")
    assert made.returncode == 0, made.output
    return job


def _comment_script(job: Job, existing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run the github-script step with Node.js and a stand-in for GitHub's API; return the
    calls that wrote comments."""
    node = shutil.which("node")
    if node is None:
        if IN_CI:
            pytest.fail("node is not installed (CI=true: the comment script must be run)")
        pytest.skip("node is not installed: the comment script cannot be run")
    [script_step] = _uses(_workflow()["jobs"]["comment"], "actions/github-script")
    program = (
        "const calls = [];\n"
        f"const existing = {json.dumps(existing)};\n"
        "const record = (kind) => async (args) => { calls.push({ kind, ...args }); };\n"
        "const github = {\n"
        "  paginate: async (fn, args) => {\n"
        "    calls.push({ kind: 'list', ...args });\n"
        "    return existing;\n"
        "  },\n"
        "  rest: { issues: { listComments: () => {}, updateComment: record('update'),\n"
        "                    createComment: record('create') } },\n"
        "};\n"
        "const context = { repo: { owner: 'acme', repo: 'wallets' }, issue: { number: 7 } };\n"
        "(async () => {\n"
        f"{script_step['with']['script']}\n"
        "})().then(() => console.log(JSON.stringify(calls)),\n"
        "          (e) => { console.error(e); process.exit(1); });\n"
    )
    done = subprocess.run(
        [node, "-e", program],
        cwd=job.workspace,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    calls: list[dict[str, Any]] = json.loads(done.stdout)
    assert calls[0] == {
        "kind": "list",
        "owner": "acme",
        "repo": "wallets",
        "issue_number": 7,
        "per_page": 100,
    }
    return calls[1:]


def _voltage_iac_commands(doc: dict[str, Any]) -> list[list[str]]:
    """Every voltage-iac command line of the workflow: the action's uses, and any `run:`."""
    commands = []
    for job in doc["jobs"].values():
        for step in job["steps"]:
            if _is_voltage_iac(step):
                words = [step["with"]["command"], *_words(step["with"].get("args", ""))]
                commands.append(words)
            for line in re.sub(r"\\\n\s*", " ", step.get("run", "")).splitlines():
                words = shlex.split(line, comments=True)
                if words and words[0] == "voltage-iac":
                    commands.append(words[1:])
    return commands


def _words(args: str) -> list[str]:
    return re.sub(r"\$\{\{.*?\}\}", " ", str(args), flags=re.DOTALL).split()


def test_workflow_shape() -> None:
    doc = _workflow()
    triggers = doc[True]  # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"pull_request", "schedule", "workflow_dispatch"}
    assert "closed" in triggers["pull_request"]["types"] and triggers["schedule"][0]["cron"]
    jobs = doc["jobs"]
    plan, comment, apply, drift = jobs["plan"], jobs["comment"], jobs["apply"], jobs["drift"]
    # A pull request plans, and on merge applies, only the stacks it changed; the nightly
    # drift check covers every stack.
    changed = "${{ fromJSON(needs.stacks.outputs.changed) }}"
    assert plan["strategy"]["matrix"]["stack"] == apply["strategy"]["matrix"]["stack"] == changed
    assert plan["needs"] == apply["needs"] == "stacks"
    assert "needs.stacks.outputs.changed != '[]'" in plan["if"]
    assert "needs.stacks.outputs.changed != '[]'" in apply["if"]
    assert drift["strategy"]["matrix"]["stack"] == sorted(STACKS)
    assert jobs["stacks"]["outputs"] == {"changed": "${{ steps.changed.outputs.stacks }}"}
    assert jobs["stacks"]["steps"][0]["with"] == {"fetch-depth": 0}  # the base is needed

    # The action is what runs voltage-iac, given its key by the environment only.
    action_inputs = set(yaml.safe_load(ACTION.read_text(encoding="utf-8"))["inputs"])
    uses = [s for job in jobs.values() for s in job["steps"] if _is_voltage_iac(s)]
    assert len(uses) == 4
    for step in uses:
        assert set(step["with"]) <= action_inputs, step["name"]
        assert step["env"] == {"VOLTAGE_API_KEY": "${{ secrets.VOLTAGE_API_KEY }}"}
        assert "config" in step["with"] and "matrix.stack" in step["with"]["config"]
    assert "secrets." not in json.dumps(
        [s.get("run", "") for j in jobs.values() for s in j["steps"]]
    )
    assert not any("pip install" in s.get("run", "") for j in jobs.values() for s in j["steps"])

    # One pull-request comment for every stack, found by the marker its first line is.
    assert comment["needs"] == "plan" and comment["if"].startswith("always()")
    [script] = _uses(comment, "actions/github-script")
    assert f"const marker = '{MARKER}';" in script["with"]["script"]
    assert comment["permissions"] == {"pull-requests": "write"}
    assert "pull-requests" not in plan["permissions"]

    # The plan file is kept per stack and commit; the apply downloads exactly that one.
    assert len(_uses(plan, "actions/upload-artifact")) == 2
    kept = _step(plan, "Keep the plan file for the apply on merge")
    assert kept["with"]["path"] == "voltage-iac-plan.json"
    [download] = _uses(apply, "actions/download-artifact")
    assert download["with"]["name"] == kept["with"]["name"]
    assert "matrix.stack" in kept["with"]["name"] and "head.sha" in kept["with"]["name"]
    assert _step(apply, "Apply the reviewed plan")["with"]["plan-file"] == "voltage-iac-plan.json"
    assert "merged" in apply["if"]

    # Applies are serialised per stack, never cancelled; plans of a newer push win.
    assert apply["concurrency"] == {
        "group": "voltage-iac-apply-${{ matrix.stack }}",
        "cancel-in-progress": False,
    }
    assert "matrix.stack" in plan["concurrency"]["group"]
    assert plan["concurrency"]["cancel-in-progress"] is True

    # Drift: Markdown to the job summary, JUnit published, exit 2 failing the job last.
    assert _step(drift, "Check drift")["with"]["job-summary"] == "true"
    [junit] = _uses(drift, "mikepenz/action-junit-report")
    assert junit["with"]["report_paths"] == "drift-junit.xml"
    assert _step(drift, "Write the JUnit report")["with"]["report-file"] == "drift-junit.xml"
    assert drift["steps"][-1]["name"] == "Fail on drift"
    assert "steps.drift.outputs.exit-code == '2'" in drift["steps"][-1]["if"]

    # Every voltage-iac command line is one the CLI accepts.
    commands = _voltage_iac_commands(doc)
    assert sorted({c[0] for c in commands}) == ["apply", "drift", "plan"]
    for command in commands:
        sub = cli.commands[command[0]]
        names = {opt for param in sub.params for opt in getattr(param, "opts", [])}
        for word in command[1:]:
            if word.startswith("--"):
                assert word in names, f"voltage-iac {command[0]} has no option {word}"


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=True,
    )
    return done.stdout.strip()


def test_workflow_plans_only_the_stacks_a_pull_request_changed(tmp_path: Path) -> None:
    step = _step(_workflow()["jobs"]["stacks"], "Find the stacks the pull request changed")
    repo = tmp_path / "repo"
    for stack in ("payments", "treasury", "legacy"):
        (repo / "stacks" / stack).mkdir(parents=True)
        (repo / "stacks" / stack / "wallets.yaml").write_text(f"stack: {stack}\n")
    (repo / "stacks" / "README.md").write_text("stacks\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "base")
    base = _git(repo, "rev-parse", "HEAD")

    def changed(head: str) -> list[str]:
        output = tmp_path / "github-output"
        output.write_text("")
        env = {
            "PATH": os.environ["PATH"],
            "GITHUB_OUTPUT": str(output),
            "BASE_SHA": base,
            "HEAD_SHA": head,
        }
        done = run_bash(step["run"], cwd=repo, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        return list(json.loads(read_outputs(output)["stacks"]))

    # A pull request editing treasury (and a file beside the stacks): treasury only.
    _git(repo, "checkout", "-qb", "pr")
    (repo / "stacks" / "treasury" / "wallets.yaml").write_text("stack: treasury\n# more\n")
    (repo / "stacks" / "treasury" / "extra.yaml").write_text("wallets: {}\n")
    (repo / "stacks" / "README.md").write_text("stacks, edited\n")
    _git(repo, "commit", "-qam", "edit treasury")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "add a file")
    assert changed(_git(repo, "rev-parse", "HEAD")) == ["treasury"]

    # Two stacks changed, one removed: the removed one has nothing to plan.
    (repo / "stacks" / "payments" / "wallets.yaml").write_text("stack: payments\n# x\n")
    _git(repo, "rm", "-rq", "stacks/legacy")
    _git(repo, "commit", "-qam", "edit payments, remove legacy")
    assert changed(_git(repo, "rev-parse", "HEAD")) == ["payments", "treasury"]

    # The base branch moving on does not count as a change of the pull request.
    _git(repo, "checkout", "-q", "main")
    (repo / "stacks" / "legacy" / "wallets.yaml").write_text("stack: legacy\n# moved on\n")
    _git(repo, "commit", "-qam", "main moves on")
    base = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-qb", "docs-only", base + "~1")
    (repo / "stacks" / "README.md").write_text("only the readme\n")
    _git(repo, "commit", "-qam", "readme")
    assert changed(_git(repo, "rev-parse", "HEAD")) == []


def test_workflow_lints_clean() -> None:
    done = actionlint(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed lint checks" in done.stdout


def test_every_shell_script_of_the_recipes_passes_shellcheck(tmp_path: Path) -> None:
    findings: list[str] = []
    scripts = sorted((REPO / "examples" / "ci").glob("*.sh"))
    assert SCRIPT in scripts
    for script in scripts:
        findings += shellcheck_script(
            script.read_text(encoding="utf-8"), "sh", script.name, tmp_path
        )
    for job_name, job in _workflow()["jobs"].items():
        for step in job["steps"]:
            if "run" in step:
                where = f"{job_name} {step['name']}"
                findings += shellcheck_script(step["run"], "bash", where, tmp_path)
    assert not findings, "\n".join(findings)


def test_workflow_steps_run_against_the_emulator(world: World) -> None:
    # Pull request: each stack planned in its own job, then one comment for both.
    plans = {stack: _plan(world, stack) for stack in STACKS}
    payments = plans["payments"]
    assert payments.steps["plan"]["exit-code"] == "2"
    part = (payments.workspace / "voltage-iac-comment" / "payments.md").read_text()
    assert part.startswith(MARKER + "\n") and "Plan: 2 to add" in part
    assert part in payments.summary.read_text()
    plan_file = Path(payments.steps["plan"]["plan-file"])
    assert plan_file == payments.workspace / "voltage-iac-plan.json"
    assert stat.S_IMODE(plan_file.stat().st_mode) == 0o600

    comment = _comment_job(world, *plans.values())
    body = (comment.workspace / "voltage-iac-comment.md").read_text(encoding="utf-8")
    assert body.startswith(MARKER + "\n") and body.count(MARKER) == 1
    assert "Stack `payments`" in body and "Stack `treasury`" in body
    assert "Plan: 2 to add" in body and "Plan: 1 to add" in body
    assert TEST_KEY not in body

    # The first push creates the comment; later pushes update the bot's comment in place
    # (a person's comment quoting the marker is left alone).
    [created] = _comment_script(comment, [])
    assert created == {
        "kind": "create",
        "owner": "acme",
        "repo": "wallets",
        "issue_number": 7,
        "body": body,
    }
    existing = [
        {"id": 11, "user": {"type": "User"}, "body": MARKER + "\nquoted by a reviewer"},
        {"id": 12, "user": {"type": "Bot"}, "body": MARKER + "\nthe previous plan"},
    ]
    [updated] = _comment_script(comment, existing)
    assert updated == {
        "kind": "update",
        "owner": "acme",
        "repo": "wallets",
        "comment_id": 12,
        "body": body,
    }

    # Merged: each stack applies the plan file its plan job kept.
    applied = {stack: _apply(world, stack, plan)[1] for stack, plan in plans.items()}
    for stack, apply in applied.items():
        assert apply.returncode == 0 and apply.outputs["exit-code"] == "0", apply.output
        done = len(STACKS[stack])
        assert f"Apply complete: {done} done, 0 failed, 0 not started." in apply.output
    assert set(world.owned("payments")) == {"a", "b"} and set(world.owned("treasury")) == {"t"}
    assert _plan(world, "payments").steps["plan"]["exit-code"] == "0"

    # Nightly: in sync, then a wallet renamed by hand is drift that fails the job last.
    drift = Job(world, "drift", "payments")
    check = drift.run("Check drift")
    assert check.returncode == 0 and check.outputs["exit-code"] == "0", check.output
    assert "**in sync**" in drift.summary.read_text()
    assert drift.run("Write the JUnit report").outputs["exit-code"] == "0"

    world.rename("a", "Alpha by hand", stack="payments")
    drift = Job(world, "drift", "payments")
    check = drift.run("Check drift")
    assert check.returncode == 0 and check.outputs["exit-code"] == "2", check.output
    assert "Alpha by hand" in drift.summary.read_text()
    junit = drift.run("Write the JUnit report")
    assert junit.returncode == 0 and junit.outputs["exit-code"] == "2"
    report = ET.parse(drift.workspace / "drift-junit.xml").getroot()
    assert report.get("failures") == "1"
    fail = drift.run("Fail on drift")
    assert fail.returncode == 2 and "drift found in stack payments" in fail.output

    # A reviewed plan overtaken by a live change is refused on merge.
    reviewed = _plan(world, "payments")
    assert reviewed.steps["plan"]["exit-code"] == "2"
    world.rename("b", "Bravo by hand", stack="payments")
    job, stale = _apply(world, "payments", reviewed)
    assert stale.returncode == 5 and stale.outputs["exit-code"] == "5", stale.output
    assert "stale" in stale.output
    explained = job.run("Explain a refused apply")
    assert "::error::apply refused (exit 5)" in explained.output
    assert world.owned("payments")["a"]["name"] == "Alpha by hand"


def test_workflow_apply_takes_the_approved_flags_from_labels(world: World) -> None:
    reviewed = _plan(world, "treasury")
    _apply(world, "treasury", reviewed)
    (world.workspace / "stacks" / "treasury" / "wallets.yaml").write_text(
        yaml.safe_dump(_stack_doc("treasury", {}))
    )
    removal = _plan(world, "treasury")
    assert removal.steps["plan"]["exit-code"] == "2"
    _job, refused = _apply(world, "treasury", removal)
    assert refused.returncode == 5 and "--allow-delete" in refused.output
    assert set(world.owned("treasury")) == {"t"}
    _job, allowed = _apply(world, "treasury", removal, "voltage-iac: allow-delete")
    assert allowed.returncode == 0, allowed.output
    assert world.owned("treasury") == {}


def test_workflow_errors_are_reported_as_errors(world: World) -> None:
    wrong = {"VOLTAGE_API_KEY": "wrong-key-123456"}
    job = Job(world, "plan", "payments")
    plan = job.run("Plan", **wrong)
    assert plan.returncode == 4 and plan.outputs["exit-code"] == "4", plan.output
    part = job.run("Write this stack's part of the comment")  # runs after the failure
    assert part.returncode == 0, part.output
    text = (job.workspace / "voltage-iac-comment" / "payments.md").read_text(encoding="utf-8")
    assert text.startswith(MARKER + "\n### voltage-iac plan of stack `payments` failed (exit 4)")
    assert "wrong-key-123456" not in text + plan.output + part.output
    assert not (job.workspace / "voltage-iac-plan.json").exists()

    drift = Job(world, "drift", "payments")
    check = drift.run("Check drift", **wrong)
    assert check.returncode == 4 and check.outputs["exit-code"] == "4", check.output
    assert "authentication" in check.output and "wrong-key-123456" not in check.output
