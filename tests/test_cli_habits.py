"""CLI habits users bring from other tools: global flags after the subcommand, `schema`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from tests.conftest import Backend, config_doc, wallet
from tests.served import TEST_KEY, served_emulator
from voltage_iac.cli import _hoist_global_flags, cli
from voltage_iac.errors import EXIT_INVALID, EXIT_OK


def test_global_flags_after_the_subcommand_are_accepted(backend: Backend) -> None:
    path = backend.write_config(config_doc({"ops": wallet("ops")}))
    before = backend.run("plan", str(path))
    after = backend.run("plan", str(path), "--no-color", "--debug")
    assert before.exit_code == EXIT_OK, before.output
    assert after.exit_code == EXIT_OK, after.output
    assert "ops" in after.output and "\x1b[" not in after.output
    assert "Plan checksum:" in after.output


def test_verbose_after_the_subcommand_logs_progress(backend: Backend) -> None:
    path = backend.write_config(config_doc({"ops": wallet("ops")}))
    result = backend.run("validate", str(path), "-vv")
    assert result.exit_code == EXIT_OK, result.output
    assert "Configuration valid" in result.output


def test_hoisting_keeps_arguments_after_double_dash() -> None:
    assert _hoist_global_flags(["plan", "x.yaml", "-vv", "--no-color"]) == [
        "-vv",
        "--no-color",
        "plan",
        "x.yaml",
    ]
    assert _hoist_global_flags(["plan", "--", "--debug"]) == ["plan", "--", "--debug"]
    # Options with values and other short flags are not global flags.
    assert _hoist_global_flags(["plan", "-h"]) == ["plan", "-h"]


def test_unknown_flag_is_still_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", "--no-such-flag", str(tmp_path)])
    assert result.exit_code == EXIT_INVALID


def test_schema_prints_the_config_schema_and_its_path() -> None:
    runner = CliRunner()
    printed = runner.invoke(cli, ["schema"])
    assert printed.exit_code == EXIT_OK, printed.output
    schema = json.loads(printed.output)
    assert schema.get("$schema", "").startswith("https://json-schema.org/")
    where = runner.invoke(cli, ["schema", "--path"])
    assert where.exit_code == EXIT_OK
    path = Path(where.output.strip())
    assert path.name == "config.v1.json"
    assert json.loads(path.read_text(encoding="utf-8")) == schema


def test_a_v1_plan_file_is_refused_with_a_clear_message(backend: Backend) -> None:
    path = backend.write_config(config_doc({"ops": wallet("ops")}))
    made = backend.run("plan", str(path), "--out", str(backend.tmp / "plan.json"))
    assert made.exit_code == EXIT_OK, made.output
    doc = json.loads((backend.tmp / "plan.json").read_text(encoding="utf-8"))
    doc["format_version"] = 1
    old = backend.tmp / "old-plan.json"
    old.write_text(json.dumps(doc), encoding="utf-8")
    result = backend.run("apply", str(path), "--plan", str(old), "--auto-approve")
    assert result.exit_code == EXIT_INVALID, result.output
    assert "plan format 1" in result.output and "reads format 2" in result.output
    assert "plan --out FILE" in result.output
    # Nothing was created.
    if backend.api is not None:
        assert not [w for w in backend.wallets() if w["name"] == "ops"]


def test_each_command_help_shows_an_example_its_environment_and_exit_codes() -> None:
    import re

    import voltage_iac

    package = Path(voltage_iac.__file__).parent
    source = "\n".join(p.read_text(encoding="utf-8") for p in package.rglob("*.py"))
    runner = CliRunner()
    for command in ("validate", "plan", "apply", "drift", "import"):
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == EXIT_OK, result.output
        text = result.output
        assert f"voltage-iac {command} " in text.split("Example:")[1]
        assert "Exit codes:" in text and "0 " in text.split("Exit codes:")[1]
        environment = text.split("Environment:")[1].split("Exit codes:")[0]
        names = re.findall(r"^\s+([A-Z][A-Z_]+)\s", environment, flags=re.M)
        assert names, text
        for name in names:  # every variable named is one the program really reads
            assert f'"{name}"' in source, name
    assert "2 changes present" in runner.invoke(cli, ["plan", "--help"]).output
    assert "5 blocked" in runner.invoke(cli, ["apply", "--help"]).output


def _imported_by(argv: list[str], cwd: Path) -> set[str]:
    """The modules a `voltage-iac` run imports (from `python -X importtime`)."""
    env = {**os.environ, "VOLTAGE_API_KEY": TEST_KEY, "VOLTAGE_API_URL": "", "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "voltage_iac", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    assert done.returncode == EXIT_OK, done.stdout + done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[-1].strip() for line in lines}


def test_a_run_against_an_api_never_loads_the_emulator_or_its_server(tmp_path: Path) -> None:
    """Against an API URL the command imports neither the emulator nor its web server
    (their start-up cost is the emulator's alone); against the embedded emulator it does."""
    path = tmp_path / "wallets.yaml"
    path.write_text(json.dumps(config_doc({"pay": wallet("Payouts")})), encoding="utf-8")
    server = ("voltage_iac.emulator", "starlette", "uvicorn")
    with served_emulator(tmp_path) as emu:
        remote = _imported_by(["plan", str(path), "--api-url", emu.base_url], tmp_path)
    assert "voltage_iac.engine" in remote
    assert not {m for m in remote if m.startswith(server)}
    embedded = _imported_by(["plan", str(path), "--api-url", "emulator"], tmp_path)
    assert {"voltage_iac.emulator", "starlette", "uvicorn"} <= embedded
