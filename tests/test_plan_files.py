"""Self-contained reviewed plan files: `plan --out FILE`, then `apply FILE` (or `apply
--plan FILE`) with no configuration, and `show FILE` with no API at all.

Everything runs the CLI for real against the emulator (embedded, or served over HTTP on
127.0.0.1); the configuration is removed before the apply wherever the point is that
the file alone is enough.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Backend, config_doc, wallet
from tests.served import TEST_KEY, free_port
from voltage_iac.cli import cli
from voltage_iac.config import load_config, state_from_plan
from voltage_iac.emulator.seed import DEMO_ORGANIZATION_ID
from voltage_iac.errors import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_SAFETY,
    UsageError,
)
from voltage_iac.planfile import desired_from_plan, plan_file_document
from voltage_iac.secret_sink import variable_names
from voltage_iac.stale import read_plan_document

REPO = Path(__file__).resolve().parents[1]
ORG = DEMO_ORGANIZATION_ID

served = pytest.mark.parametrize("backend", ["served"], indirect=True)


def hook(**fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": "Payment events",
        "environment": "staging",
        "url": "https://hooks.example.com/voltage",
        "events": ["send.succeeded", "send.failed"],
        "secret": {"file": "secrets/payment-events.env"},
    }
    entry.update(fields)
    return entry


def _config(backend: Backend, wallets: dict[str, Any], **extra: Any) -> Path:
    return backend.write_config(config_doc(wallets, **extra))


def _plan_out(backend: Backend, path: Path, name: str = "plan.json", *flags: str) -> Path:
    out = backend.tmp / name
    made = backend.run("plan", str(path), "--out", str(out), *flags)
    assert made.exit_code == EXIT_OK, made.output
    return out


def _names(backend: Backend) -> dict[str, str]:
    return {
        w["metadata"]["voltage-iac.key"]: w["name"]
        for w in backend.wallets()
        if w["active"] and (w.get("metadata") or {}).get("voltage-iac.stack") == "e2e"
    }


def _webhooks(backend: Backend) -> list[dict[str, Any]]:
    assert backend.api is not None
    from voltage_iac.emulator.seed import DEMO_STAGING_ENVIRONMENT_ID

    answer = backend.api.get(
        f"/organizations/{ORG}/webhooks", params={"environment_ids": DEMO_STAGING_ENVIRONMENT_ID}
    )
    answer.raise_for_status()
    return list(answer.json())


def _rename(backend: Backend, wallet_id: str, name: str) -> None:
    assert backend.api is not None
    answer = backend.api.patch(f"/organizations/{ORG}/wallets/{wallet_id}", json={"name": name})
    assert answer.status_code == 202, answer.text
    backend.wait_for(
        lambda: (
            backend.api is not None
            and backend.api.get(f"/organizations/{ORG}/wallets/{wallet_id}").json()["name"] == name
        ),
        f"rename to {name}",
    )


# -- apply from the file alone --------------------------------------------------------------


@pytest.mark.parametrize("form", ["positional", "--plan"])
def test_the_plan_file_alone_applies_wallets_and_webhooks(backend: Backend, form: str) -> None:
    path = _config(backend, {"a": wallet("Alpha"), "b": wallet("Bravo")}, webhooks={"pe": hook()})
    plan_file = _plan_out(backend, path)
    path.unlink()  # the reviewed file is all apply gets

    given = [str(plan_file)] if form == "positional" else ["--plan", str(plan_file)]
    result = backend.run("apply", *given, "--auto-approve")
    assert result.exit_code == EXIT_OK, result.output
    assert "Apply complete: 3 done, 0 failed, 0 not started." in result.stdout
    assert _names(backend) == {"a": "Alpha", "b": "Bravo"}
    [live] = _webhooks(backend)
    assert live["url"] == "https://hooks.example.com/voltage"
    # The signing secret went to the sink the configuration named, beside the configuration.
    id_name, secret_name = variable_names("pe")
    sink = (backend.tmp / "secrets" / "payment-events.env").read_text(encoding="utf-8")
    assert f"{id_name}={live['id']}" in sink and f"{secret_name}=whsec_" in sink

    # Applied once, the same file is stale: it never applies twice.
    again = backend.run("apply", *given, "--auto-approve")
    assert again.exit_code == EXIT_SAFETY, again.output
    assert "is stale; nothing was changed" in again.stderr


def test_a_live_change_refuses_the_file_naming_every_difference(backend: Backend) -> None:
    path = _config(backend, {"a": wallet("Alpha"), "b": wallet("Bravo")})
    assert backend.run("apply", str(path), "--auto-approve").exit_code == EXIT_OK
    ids = {
        w["metadata"]["voltage-iac.key"]: w["id"]
        for w in backend.wallets()
        if (w.get("metadata") or {}).get("voltage-iac.stack") == "e2e"
    }
    path = _config(backend, {"a": wallet("Alpha Prime"), "b": wallet("Bravo")})
    plan_file = _plan_out(backend, path)
    path.unlink()

    _rename(backend, ids["a"], "Alpha by hand")
    _rename(backend, ids["b"], "Bravo by hand")
    result = backend.run("apply", str(plan_file), "--auto-approve")
    assert result.exit_code == EXIT_SAFETY, result.output
    assert f"the reviewed plan {plan_file} is stale; nothing was changed" in result.stderr
    assert (
        f"a: wallet {ids['a']} field name changed since the plan was made: "
        "'Alpha' -> 'Alpha by hand'" in result.stderr
    )
    assert "b: now needs update, which the reviewed plan does not contain" in result.stderr
    assert _names(backend) == {"a": "Alpha by hand", "b": "Bravo by hand"}


def test_a_configuration_other_than_the_planned_one_is_refused_naming_both_digests(
    backend: Backend,
) -> None:
    path = _config(backend, {"a": wallet("Alpha")})
    planned = load_config(path).digest
    plan_file = _plan_out(backend, path)
    path = _config(backend, {"a": wallet("Alpha Second")})
    now = load_config(path).digest

    result = backend.run("apply", str(path), "--plan", str(plan_file), "--auto-approve")
    assert result.exit_code == EXIT_SAFETY, result.output
    assert planned in result.stderr and now in result.stderr
    assert "voltage-iac apply PLAN_FILE" in result.stderr  # the fix
    assert "nothing was changed" in result.stderr
    assert _names(backend) == {}

    # The planned configuration with its plan applies.
    path = _config(backend, {"a": wallet("Alpha")})
    result = backend.run("apply", str(path), "--plan", str(plan_file), "--auto-approve")
    assert result.exit_code == EXIT_OK, result.output
    assert _names(backend) == {"a": "Alpha"}


def test_the_run_not_the_file_says_where_the_api_is(backend: Backend, tmp_path: Path) -> None:
    path = _config(backend, {"a": wallet("Alpha")})
    plan_file = _plan_out(backend, path)
    closed = f"http://127.0.0.1:{free_port()}/v1"
    # --api-url of the run wins over what the plan was made against ...
    args = [str(plan_file), "--auto-approve", "--deadline", "20"]
    result = backend.runner.invoke(
        cli,
        ["apply", *args, "--api-url", closed],
        env={**backend.env, "VOLTAGE_API_KEY": TEST_KEY},
        catch_exceptions=False,
    )
    assert result.exit_code == EXIT_ERROR, result.output
    assert "127.0.0.1" in result.output and "Traceback" not in result.output
    # ... and so does VOLTAGE_API_URL.
    result = backend.runner.invoke(
        cli,
        ["apply", *args],
        env={**backend.env, "VOLTAGE_API_KEY": TEST_KEY, "VOLTAGE_API_URL": closed},
        catch_exceptions=False,
    )
    assert result.exit_code == EXIT_ERROR, result.output
    assert _names(backend) == {}


def test_the_api_key_and_signing_secrets_never_enter_the_file(
    served_emulator: tuple[str, str], tmp_path: Path
) -> None:
    base_url, _admin = served_emulator
    env = {"NO_COLOR": "1", "VOLTAGE_API_URL": "", "VOLTAGE_API_KEY": TEST_KEY}
    import httpx

    with httpx.Client(base_url=base_url, headers={"x-api-key": TEST_KEY}) as api:
        backend = Backend("served", ["--api-url", base_url], env, tmp_path, api)
        path = _config(backend, {"a": wallet("Alpha")}, webhooks={"pe": hook()})
        plan_file = _plan_out(backend, path)
        assert backend.run("apply", str(plan_file), "--auto-approve").exit_code == EXIT_OK
        secret = (tmp_path / "secrets" / "payment-events.env").read_text().split("whsec_")[1]
        # A later plan (an update of the webhook) records its sink, never its secret.
        path = _config(
            backend, {"a": wallet("Alpha")}, webhooks={"pe": hook(url="https://h.example.com")}
        )
        later = _plan_out(backend, path, "later.json")
        for made in (plan_file, later):
            text = made.read_bytes()
            assert TEST_KEY.encode() not in text
            assert secret.strip()[:16].encode() not in text
            assert oct(made.stat().st_mode & 0o777) == "0o600"
        assert '"file": "secrets/payment-events.env"' in later.read_text()


# -- which file is which --------------------------------------------------------------------


def test_a_plan_file_is_told_apart_by_content_not_by_name(backend: Backend) -> None:
    path = _config(backend, {"a": wallet("Alpha")})
    plan_file = _plan_out(backend, path, "reviewed.yaml")  # a plan file with a YAML name
    result = backend.run("apply", str(plan_file), "--auto-approve")
    assert result.exit_code == EXIT_OK, result.output
    assert _names(backend) == {"a": "Alpha"}

    # A configuration written as JSON (YAML's subset) is a configuration, whatever its name.
    as_json = backend.tmp / "config.json"
    as_json.write_text(json.dumps(config_doc({"a": wallet("Alpha"), "b": wallet("Bravo")})))
    result = backend.run("apply", str(as_json), "--auto-approve")
    assert result.exit_code == EXIT_OK, result.output
    assert _names(backend) == {"a": "Alpha", "b": "Bravo"}


def test_a_file_that_is_neither_is_refused_with_a_hint(backend: Backend) -> None:
    path = _config(backend, {"a": wallet("Alpha")})
    text_plan = backend.tmp / "plan.txt"
    text_plan.write_text(backend.run("plan", str(path)).stdout, encoding="utf-8")
    drift = backend.tmp / "drift.json"
    drift.write_text(backend.run("drift", str(path), "--format", "json").stdout)
    json_plan = backend.tmp / "stdout-plan.json"
    json_plan.write_text(backend.run("plan", str(path), "--format", "json").stdout)

    for given, phrase in (
        ([str(text_plan)], "is neither a configuration nor a plan file"),
        ([str(drift)], "neither a configuration nor a plan file"),
        ([str(json_plan)], "does not record the desired state"),
        (["--plan", str(path)], "is not a voltage-iac plan file"),
        ([], "apply needs a configuration or a reviewed plan file"),
    ):
        result = backend.run("apply", *given, "--auto-approve")
        assert result.exit_code == EXIT_INVALID, (given, result.output)
        assert phrase in result.stderr, (given, result.output)
        assert "hint:" in result.stderr and "Traceback" not in result.output
    assert _names(backend) == {}

    two = backend.run("apply", str(_plan_out(backend, path)), "--plan", str(json_plan))
    assert two.exit_code == EXIT_INVALID, two.output
    assert "give the plan file once" in two.stderr


def test_a_plan_file_where_a_configuration_is_expected_says_so(backend: Backend) -> None:
    # A plan file given to plan, drift or validate, or among several stacks of apply, is
    # named as a plan file with what to do with it, not as 19 problems of a bad YAML.
    path = _config(backend, {"a": wallet("Alpha")})
    plan_file = _plan_out(backend, path)
    other = backend.write_config(config_doc({"b": wallet("Bravo")}, stack="other"), "b.yaml")
    for given in (
        ["plan", str(plan_file)],
        ["drift", str(plan_file)],
        ["validate", str(plan_file)],
        ["apply", str(plan_file), str(other), "--auto-approve"],
    ):
        result = backend.run(*given)
        assert result.exit_code == EXIT_INVALID, (given, result.output)
        assert "is a plan file" in result.output, (given, result.output)
        assert f"voltage-iac apply {plan_file}" in result.output, (given, result.output)
        assert "1 problem" in result.output and "Traceback" not in result.output
    assert _names(backend) == {}


def test_a_plan_file_without_the_desired_state_still_applies_with_its_configuration(
    backend: Backend,
) -> None:
    """A plan file of the same format made before files recorded the desired state."""
    path = _config(backend, {"a": wallet("Alpha")})
    plan_file = _plan_out(backend, path)
    doc = json.loads(plan_file.read_text())
    for name in ("desired", "backend", "file_checksum"):
        del doc[name]
    plan_file.write_text(json.dumps(doc))
    alone = backend.run("apply", str(plan_file), "--auto-approve")
    assert alone.exit_code == EXIT_INVALID, alone.output
    assert "does not record the desired state" in alone.stderr
    assert "apply PATH --plan FILE" in alone.stderr
    result = backend.run("apply", str(path), "--plan", str(plan_file), "--auto-approve")
    assert result.exit_code == EXIT_OK, result.output
    assert _names(backend) == {"a": "Alpha"}


# -- the recorded desired state is the configuration's --------------------------------------


@pytest.mark.parametrize("example", ["quickstart.yaml", "webhooks.yaml", "lnbits.yaml"])
def test_the_recorded_state_rebuilds_the_configuration_exactly(example: str) -> None:
    from voltage_iac.plan import Plan

    desired = load_config(REPO / "examples" / example, environ={"VOLTAGE_ORGANIZATION_ID": ORG})
    empty = Plan(desired.stack, desired.organization_id, desired.provider_kind, desired.digest)
    doc = json.loads(json.dumps(plan_file_document(empty, desired, "a backend")))
    reviewed = read_plan_document(doc, "plan.json")
    rebuilt = state_from_plan(reviewed)
    assert rebuilt.digest == desired.digest
    for kind, entries in desired.resources.items():
        assert dict(rebuilt.of(kind)) == dict(entries)
    assert rebuilt.environments == desired.environments
    assert (rebuilt.stack, rebuilt.organization_id, rebuilt.api_url) == (
        desired.stack,
        desired.organization_id,
        desired.api_url,
    )
    assert dict(rebuilt.provider_options) == dict(desired.provider_options)
    assert rebuilt.guards == desired.guards and rebuilt.ignore == desired.ignore
    # A record with a field no kind reads is malformed, not silently dropped.
    kind = next(iter(doc["desired"]["resources"]))
    key = next(iter(doc["desired"]["resources"][kind]))
    doc["desired"]["resources"][kind][key]["surprise"] = 1
    with pytest.raises(UsageError, match=r"is not a \w+ record"):
        desired_from_plan(read_plan_document(_resealed(doc), "plan.json"))


def _resealed(doc: dict[str, Any]) -> dict[str, Any]:
    from voltage_iac.stale import file_checksum_of

    doc["file_checksum"] = file_checksum_of(doc)
    return doc


def test_a_moved_checkout_hands_secrets_to_the_sink_where_the_checkout_is_now(
    served_emulator: tuple[str, str], tmp_path: Path
) -> None:
    """Plan in one place (as a pull request's job), apply from a copy elsewhere (the merge
    job's checkout): sinks are relative to where the commands run."""
    base_url, _admin = served_emulator
    env = {**os.environ, "NO_COLOR": "1", "VOLTAGE_API_URL": "", "VOLTAGE_API_KEY": TEST_KEY}
    first = tmp_path / "pr-checkout"
    (first / "infra").mkdir(parents=True)
    doc = config_doc({"a": wallet("Alpha")}, webhooks={"pe": hook()})
    (first / "infra" / "wallets.yaml").write_text(json.dumps(doc))

    def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "voltage_iac", *args, "--api-url", base_url],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    made = run(first, "plan", "infra/wallets.yaml", "--out", "plan.json")
    assert made.returncode == EXIT_OK, made.stderr
    second = tmp_path / "merge-checkout"  # the same repository, checked out elsewhere
    shutil.copytree(first, second)
    shutil.rmtree(first)
    applied = run(second, "apply", "plan.json", "--auto-approve")
    assert applied.returncode == EXIT_OK, applied.stderr
    sink = second / "infra" / "secrets" / "payment-events.env"
    assert "VOLTAGE_WEBHOOK_SECRET_PE=whsec_" in sink.read_text(encoding="utf-8")
    assert "whsec_" not in applied.stdout + applied.stderr


# -- applied from another directory -----------------------------------------------------


WARN_POLICY = """package main

import rego.v1

warn contains msg if {
	some change in input.changes
	msg := sprintf("%s %s is planned", [change.kind, change.key])
}
"""


def _checkout(root: Path, **extra: Any) -> Path:
    """A checkout at `root`: infra/wallets.yaml (with `extra` sections) and policies/."""
    (root / "infra").mkdir(parents=True)
    (root / "policies").mkdir()
    (root / "policies" / "warn.rego").write_text(WARN_POLICY, encoding="utf-8")
    doc = config_doc({"a": wallet("Alpha")}, **extra)
    (root / "infra" / "wallets.yaml").write_text(json.dumps(doc), encoding="utf-8")
    return root


def _planned_in(backend: Backend, root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(root)
    made = backend.run("plan", "infra/wallets.yaml", "--out", "plan.json")
    assert made.exit_code == EXIT_OK, made.output
    return root / "plan.json"


@served
@pytest.mark.parametrize("section", ["webhooks", "policies"])
def test_a_plan_file_applied_from_another_directory_is_refused_before_any_write(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, section: str
) -> None:
    """Its webhook sinks' folders and policy files are recorded relative to the directory
    `plan` ran in: from elsewhere, apply refuses up front (exit 3), naming what is
    missing, writing nothing to the API and no secret anywhere; from there, it applies."""
    extra: dict[str, Any] = (
        {"webhooks": {"pe": hook()}}
        if section == "webhooks"
        else {"policies": ["../policies"]}  # relative to the configuration file
    )
    where = _checkout(backend.tmp / "x", **extra)
    plan_file = _planned_in(backend, where, monkeypatch)
    elsewhere = backend.tmp / "y"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    hooks, wallets = len(_webhooks(backend)), len(backend.wallets())

    for given in ([str(plan_file)], ["--plan", str(plan_file)]):
        refused = backend.run("apply", *given, "--auto-approve")
        assert refused.exit_code == EXIT_INVALID, refused.output
        message = " ".join(refused.stderr.split())
        assert "relative to the directory `plan` ran in" in message
        missing = {
            "webhooks": "infra (secret sink folder of webhook pe)",
            "policies": "policies (policies)",
        }[section]
        assert missing in message
        assert "run apply from the directory `plan --out` ran in" in message
        assert "Traceback" not in refused.output and "whsec_" not in refused.output
    # The rule is the plan file reader's, for every caller, not the command line's only.
    reviewed = read_plan_document(json.loads(plan_file.read_text()), str(plan_file))
    with pytest.raises(UsageError, match="relative to the directory `plan` ran in"):
        state_from_plan(reviewed)
    assert (len(_webhooks(backend)), len(backend.wallets())) == (hooks, wallets)
    assert list(backend.tmp.rglob("payment-events.env")) == []
    assert list(elsewhere.iterdir()) == []  # no folder made for a sink here

    monkeypatch.chdir(where)
    applied = backend.run("apply", "plan.json", "--auto-approve")
    assert applied.exit_code == EXIT_OK, applied.output
    assert len(backend.wallets()) == wallets + 1
    if section == "webhooks":
        assert len(_webhooks(backend)) == hooks + 1
        sink = where / "infra" / "secrets" / "payment-events.env"
        assert "=whsec_" in sink.read_text(encoding="utf-8")
        assert [p.parent for p in backend.tmp.rglob("payment-events.env")] == [sink.parent]
    else:
        assert "wallet a is planned" in applied.output


@served
def test_only_the_folders_the_plan_uses_are_checked(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An update of a webhook hands it no secret: its sink's folder is not needed, so
    the plan applies from another directory too."""
    where = _checkout(backend.tmp / "x", webhooks={"pe": hook()})
    monkeypatch.chdir(where)
    assert backend.run("apply", "infra/wallets.yaml", "--auto-approve").exit_code == EXIT_OK
    moved = hook(url="https://hooks.example.com/moved")
    doc = config_doc({"a": wallet("Alpha")}, webhooks={"pe": moved})
    (where / "infra" / "wallets.yaml").write_text(json.dumps(doc), encoding="utf-8")
    plan_file = _planned_in(backend, where, monkeypatch)
    elsewhere = backend.tmp / "y"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    applied = backend.run("apply", str(plan_file), "--auto-approve")
    assert applied.exit_code == EXIT_OK, applied.output
    [live] = _webhooks(backend)
    assert live["url"] == "https://hooks.example.com/moved"
    assert list(elsewhere.iterdir()) == []


# -- show ------------------------------------------------------------------------------------


def test_show_renders_the_saved_plan_without_api_or_credentials(backend: Backend) -> None:
    path = _config(backend, {"a": wallet("Alpha")})
    assert backend.run("apply", str(path), "--auto-approve").exit_code == EXIT_OK
    path = _config(
        backend,
        {"a": wallet("Alpha Prime"), "b": wallet("Bravo", limit="3000 sat")},
        webhooks={"pe": hook()},
    )
    plan_file = _plan_out(backend, path)
    shown_by_plan = {
        fmt: backend.run("plan", str(path), "--format", fmt).stdout
        for fmt in ("text", "json", "markdown")
    }
    # No API: a closed port, no key, no emulator.
    offline = {
        "NO_COLOR": "1",
        "VOLTAGE_API_URL": f"http://127.0.0.1:{free_port()}/v1",
        "VOLTAGE_API_KEY": "",
    }
    for fmt, expected in shown_by_plan.items():
        shown = backend.run("show", str(plan_file), "--format", fmt, env=offline)
        assert shown.exit_code == EXIT_OK, shown.output
        assert shown.stdout == expected, fmt
    text = backend.run("show", str(plan_file), env=offline).stdout
    checksum = json.loads(plan_file.read_text())["checksum"]
    assert text.splitlines()[-1] == f"Plan checksum: {checksum}"
    assert "+ webhook pe (staging) will be created" in text

    doc = json.loads(plan_file.read_text())
    doc["changes"][0]["name"] = "Something else"
    tampered = backend.tmp / "tampered.json"
    tampered.write_text(json.dumps(doc))
    refused = backend.run("show", str(tampered), env=offline)
    assert refused.exit_code == EXIT_SAFETY, refused.output
    assert "was changed after it was made" in refused.stderr and refused.stdout == ""
    not_plan = backend.run("show", str(path), env=offline)
    assert not_plan.exit_code == EXIT_INVALID, not_plan.output


def test_show_keeps_what_force_recorded(backend: Backend) -> None:
    path = _config(backend, {"a": wallet("Alpha", limit="1 sat")})
    assert backend.run("apply", str(path), "--auto-approve").exit_code == EXIT_OK
    path = _config(backend, {"a": wallet("Alpha", limit="1000 sat")})
    forced = _plan_out(backend, path, "forced.json", "--force")
    planned = backend.run("plan", str(path), "--force").stdout
    shown = backend.run("show", str(forced))
    assert shown.exit_code == EXIT_OK, shown.output
    assert "Guards overridden with --force:" in shown.stdout
    assert shown.stdout == planned


def test_plan_detailed_exitcode_and_out_still_go_together(backend: Backend) -> None:
    path = _config(backend, {"a": wallet("Alpha")})
    out = backend.tmp / "plan.json"
    result = backend.run("plan", str(path), "--out", str(out), "--detailed-exitcode")
    assert result.exit_code == EXIT_CHANGES, result.output
    assert json.loads(out.read_text())["desired"]["stack"] == "e2e"
