"""The README's quick start, as written: plan, apply, then a plan with no changes.

Runs the installed command in a fresh working directory, so the embedded emulator's
state starts empty exactly as on a new machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from voltage_iac.config import load_config

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(
    p
    for p in (REPO / "examples").rglob("*")
    if p.suffix in (".yaml", ".yml") and "ci" not in p.relative_to(REPO).parts
)


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLTAGE_")}
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "voltage_iac", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_quickstart_plan_apply_plan(tmp_path: Path) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    plan = _run(tmp_path, "plan", "examples/quickstart.yaml")
    assert plan.returncode == 0, plan.stderr
    assert "Plan: 3 to add, 0 to change, 0 to replace, 0 to destroy." in plan.stdout
    assert "Legacy treasury" in plan.stdout

    apply = _run(tmp_path, "apply", "examples/quickstart.yaml", "--auto-approve")
    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert "Apply complete: 3 done, 0 failed, 0 not started." in apply.stdout

    again = _run(tmp_path, "plan", "examples/quickstart.yaml", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes." in again.stdout
    assert (tmp_path / ".voltage-iac" / "emulator.db").exists()


def test_examples_are_found() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"quickstart.yaml", "lnbits.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_example_is_valid(path: Path) -> None:
    environ = {"VOLTAGE_ORGANIZATION_ID": "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"}
    load_config(path, environ=environ)
