"""The pre-commit hook (.pre-commit-hooks.yaml), installed and run by pre-commit itself.

`pre-commit try-repo` installs the hook from a git repository (here a clone of this
checkout's HEAD) into an environment of its own, then runs it in another repository: a
temporary one holding a configuration. A valid configuration passes; an invalid one
fails, naming the file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO, config_doc, wallet
from tests.test_action import require_tool

HOOKS = REPO / ".pre-commit-hooks.yaml"
TIMEOUT = 600  # the first run installs voltage-iac and its dependencies


def _pre_commit() -> str:
    found = shutil.which("pre-commit", path=str(Path(sys.executable).parent))
    if found is None:
        require_tool("pre-commit", "pip install pre-commit (in the test extra)")
    assert found is not None
    return found


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def test_hook_definition() -> None:
    [hook] = yaml.safe_load(HOOKS.read_text(encoding="utf-8"))
    assert hook["id"] == "voltage-iac-validate"
    assert hook["language"] == "python" and hook["entry"] == "voltage-iac validate"
    # `validate` takes one PATH: the folder is given, never the changed files.
    assert hook["pass_filenames"] is False and hook["args"] == ["wallets"]
    assert re.search(hook["files"], "wallets/staging.yml")
    assert not re.search(hook["files"], "notes.yaml")


def test_try_repo_passes_a_valid_configuration_and_fails_an_invalid_one(tmp_path: Path) -> None:
    pre_commit = _pre_commit()
    hooks_repo = tmp_path / "voltage-iac"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(hooks_repo)], check=True, timeout=120)
    project = tmp_path / "project"
    (project / "wallets").mkdir(parents=True)
    _git(project, "init", "--quiet")
    doc = config_doc({"a": wallet("Alpha")})
    (project / "wallets" / "wallets.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    _git(project, "add", ".")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VOLTAGE_", "GIT_", "PRE_COMMIT"))
    }
    env.update({"PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "NO_COLOR": "1"})
    command = [pre_commit, "try-repo", str(hooks_repo), "voltage-iac-validate", "--all-files"]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    valid = run()
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert "voltage-iac validate" in valid.stdout and "Passed" in valid.stdout

    bad = dict(doc)
    bad["wallets"] = {"a": wallet("Alpha", limit="-5 sat")}
    (project / "wallets" / "wallets.yaml").write_text(yaml.safe_dump(bad), encoding="utf-8")
    _git(project, "add", ".")
    invalid = run()
    assert invalid.returncode == 1, invalid.stdout + invalid.stderr
    assert "Failed" in invalid.stdout
    assert "wallets/wallets.yaml" in invalid.stdout and "limit" in invalid.stdout
