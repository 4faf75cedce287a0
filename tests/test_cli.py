"""Command-line behaviour a user meets before any API call: exit codes, errors, colour."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import config_doc, wallet
from voltage_iac import cli as cli_module
from voltage_iac.cli import cli

BAD = Path(__file__).parent / "configs" / "bad"
HEADER = re.compile(r"# expect: (?P<expect>.+)\n# line: (?P<line>none|\d+)\n")
CORPUS = sorted(
    p for p in BAD.glob("*.yaml") if HEADER.match(p.read_bytes().decode("utf-8", "replace"))
)


def _invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env or {}, catch_exceptions=False)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_every_broken_config_fails_validate_with_its_message_and_exit_3(path: Path) -> None:
    header = HEADER.match(path.read_bytes().decode("utf-8", "replace"))
    assert header is not None
    result = _invoke("validate", str(path), env={"VOLTAGE_ORGANIZATION_ID": ""})
    assert result.exit_code == 3, result.output
    assert header["expect"] in result.stderr
    if header["line"] != "none":
        assert f"{path}:{header['line']}" in result.stderr
    assert "Traceback" not in result.output


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 40


def test_valid_config_validates(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(config_doc({"a": wallet("Alpha")})), encoding="utf-8")
    result = _invoke("validate", str(path))
    assert result.exit_code == 0, result.output
    assert "Configuration valid: stack e2e, 1 wallet(s)" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["plan"],  # missing argument
        ["plan", "does-not-exist.yaml"],  # missing file
        ["apply", "--parallelism", "0", "x.yaml"],  # out of range
        ["plan", "--no-such-flag", "x.yaml"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_3_not_2(args: list[str]) -> None:
    result = _invoke(*args)
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output


def test_apply_refuses_without_a_terminal_unless_auto_approve(tmp_path: Path, backend) -> None:
    path = backend.write_config(config_doc({"a": wallet("Alpha")}))
    result = backend.run("apply", str(path))
    assert result.exit_code == 3, result.output
    assert "--auto-approve" in result.stderr
    assert not [w for w in backend.wallets() if w["name"] == "Alpha"]


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert cli_module._use_color(no_color=False) is True
    assert cli_module._use_color(no_color=True) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert cli_module._use_color(no_color=False) is False
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    assert cli_module._use_color(no_color=False) is False


def test_unexpected_errors_show_no_traceback_without_debug(monkeypatch, tmp_path) -> None:
    def boom(*_a, **_k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(cli_module, "load_config", boom)
    plain = _invoke("validate", str(tmp_path))
    assert plain.exit_code == 1
    assert "kaboom" in plain.stderr and "Traceback" not in plain.output
    debug = _invoke("--debug", "validate", str(tmp_path))
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr


def test_version() -> None:
    result = _invoke("--version")
    assert result.exit_code == 0 and "voltage-iac" in result.stdout
