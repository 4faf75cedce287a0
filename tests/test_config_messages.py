"""A value written where a webhook's secret sink belongs may be the signing secret
itself: the configuration error names the field and the fix, never the value."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tests.conftest import config_doc
from voltage_iac.cli import cli

SECRET = "whsec_Zq8c2VnY4kT1rP0xW7mB5aL9"


@pytest.mark.parametrize(
    "secret", [SECRET, [SECRET], {"file": "secrets/pe.env", "timeout_seconds": SECRET}]
)
def test_a_secret_written_in_the_configuration_is_not_echoed(
    tmp_path: Path, secret: object
) -> None:
    hook = {
        "name": "Payment events",
        "environment": "staging",
        "url": "https://hooks.example.com/voltage",
        "events": ["send.succeeded"],
        "secret": secret,
    }
    path = tmp_path / "wallets.yaml"
    path.write_text(yaml.safe_dump(config_doc({}, webhooks={"pe": hook}), sort_keys=False))
    result = CliRunner().invoke(cli, ["validate", str(path)], catch_exceptions=False)
    assert result.exit_code == 3, result.output
    assert "webhooks.pe.secret" in result.output
    assert SECRET[:8] not in result.output and SECRET[-8:] not in result.output


def test_empty_lists_and_bad_sink_values_get_a_fix(tmp_path: Path) -> None:
    hooks = {
        "a": {
            "name": "A",
            "environment": "staging",
            "url": "https://hooks.example.com/a",
            "events": [],
            "secret": {"command": [], "timeout_seconds": 99999},
        },
        "b": {
            "name": "B",
            "environment": "staging",
            "url": "https://hooks.example.com/b",
            "events": ["send.failed"],
            "secret": {"file": "secrets/"},
        },
    }
    path = tmp_path / "wallets.yaml"
    path.write_text(yaml.safe_dump(config_doc({}, webhooks=hooks), sort_keys=False))
    result = CliRunner().invoke(cli, ["validate", str(path)], catch_exceptions=False)
    assert result.exit_code == 3, result.output
    lines = result.output.splitlines()

    def fix_after(message: str) -> str:
        [index] = [i for i, line in enumerate(lines) if message in line]
        assert lines[index + 1].strip().startswith("fix: "), lines[index : index + 2]
        return lines[index + 1]

    assert "send.succeeded" in fix_after("webhooks.a.events: is empty; at least 1 item needed")
    assert "standard input" in fix_after("webhooks.a.secret.command: is empty")
    # a number is never a signing secret: it is shown, with the bound
    assert "600 seconds" in fix_after("timeout_seconds: `99999` is out of range")
    assert "secrets/payment-events.env" in fix_after("`secret.file` is not a file path")
