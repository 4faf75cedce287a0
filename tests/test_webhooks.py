"""Webhooks as declared resources, against the emulator served over HTTP on 127.0.0.1.

The CLI runs for real (in-process through click's runner, or as a child process where
the log output at -vv --debug must be searched); the emulator runs in its own process
(`voltage-iac emulator serve`), steered through its admin endpoints. The signing secret
the API shows once must land in the configured sink and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner, Result

from tests.conftest import config_doc
from tests.served import TEST_KEY, ServedEmulator, served_emulator
from voltage_iac.cli import cli
from voltage_iac.client import VoltageClient
from voltage_iac.emulator.seed import (
    DEMO_ORGANIZATION_ID,
    DEMO_PRODUCTION_ENVIRONMENT_ID,
    DEMO_STAGING_ENVIRONMENT_ID,
)
from voltage_iac.kinds.webhook import marked_name, webhook_id
from voltage_iac.secret_sink import variable_names

REPO = Path(__file__).resolve().parents[1]
SECRET_VAR = variable_names("payment-events")[1]
ID_VAR = variable_names("payment-events")[0]


def hook(**fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": "Payment events",
        "environment": "staging",
        "url": "https://hooks.example.com/voltage",
        "events": ["send.succeeded", "send.failed", "receive.completed"],
        "secret": {"file": "secrets/payment-events.env"},
    }
    entry.update(fields)
    return entry


@dataclass
class World:
    emu: ServedEmulator
    tmp: Path
    api: httpx.Client
    runner: CliRunner

    @property
    def env(self) -> dict[str, str]:
        return {"NO_COLOR": "1", "VOLTAGE_API_KEY": TEST_KEY, "VOLTAGE_API_URL": ""}

    def write(self, webhooks: dict[str, Any], *, stack: str = "e2e") -> Path:
        path = self.tmp / "config.yaml"
        doc = config_doc({}, stack=stack, webhooks=webhooks)
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return path

    def run(self, *argv: str) -> Result:
        args = list(argv)
        if args[0] in ("plan", "apply", "drift", "rotate-secret"):
            args += ["--api-url", self.emu.base_url]
        return self.runner.invoke(cli, args, env=self.env, catch_exceptions=False)

    def run_process(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """The CLI as a child process: its logging goes where a user's would."""
        args = list(argv)
        command = next(a for a in args if not a.startswith("-"))
        if command in ("plan", "apply", "drift", "rotate-secret"):
            args += ["--api-url", self.emu.base_url]
        return subprocess.run(
            [sys.executable, "-m", "voltage_iac", *args],
            env={**os.environ, **self.env},
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def webhooks(self) -> list[dict[str, Any]]:
        answer = self.api.get(
            f"/organizations/{DEMO_ORGANIZATION_ID}/webhooks",
            params=[
                ("environment_ids", DEMO_STAGING_ENVIRONMENT_ID),
                ("environment_ids", DEMO_PRODUCTION_ENVIRONMENT_ID),
                ("statuses", "active"),
                ("statuses", "stopped"),
                ("statuses", "deleted"),
            ],
        )
        answer.raise_for_status()
        return list(answer.json())

    def current_hash(self, hook_id: str) -> str:
        for item in self.emu.state()["webhooks"]:
            if item["id"] == hook_id:
                return str(item["shared_secret_sha256"])
        raise AssertionError(f"webhook {hook_id} not in the emulator")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with served_emulator(tmp_path) as emu:
        api = httpx.Client(base_url=emu.base_url, headers={"x-api-key": TEST_KEY}, timeout=10)
        try:
            yield World(emu, tmp_path, api, CliRunner())
        finally:
            api.close()


def wait_until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def read_dotenv(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def fragments(secret: str, size: int = 10) -> list[str]:
    """Every `size`-character window of the secret's random part (the `whsec_` prefix is
    the same for every secret)."""
    body = secret.removeprefix("whsec_")
    return [body[i : i + size] for i in range(len(body) - size + 1)]


def assert_nowhere(secret: str, texts: dict[str, str]) -> None:
    windows = fragments(secret)
    for where, text in texts.items():
        found = [w for w in windows if w in text]
        assert not found, f"a fragment of the secret appears in {where}"


# -- the life of a webhook ---------------------------------------------------------------


def test_apply_replan_update_stop_start_and_delete_only_with_the_flag(world: World) -> None:
    config = world.write({"payment-events": hook()})

    plan = world.run("plan", str(config))
    assert plan.exit_code == 0, plan.output
    assert "+ webhook payment-events (staging) will be created" in plan.stdout
    assert 'secret_sink = "file ' in plan.stdout

    applied = world.run("apply", str(config), "--auto-approve")
    assert applied.exit_code == 0, applied.output
    sink = world.tmp / "secrets" / "payment-events.env"
    assert f"signing secret handed to file {sink}" in applied.stdout or (
        "signing secret handed to file" in applied.stdout and "payment-events.env" in applied.stdout
    )
    assert stat.S_IMODE(sink.stat().st_mode) == 0o600
    values = read_dotenv(sink)
    (live,) = world.webhooks()
    expected_id = webhook_id(
        DEMO_ORGANIZATION_ID, DEMO_STAGING_ENVIRONMENT_ID, "e2e", "payment-events"
    )
    assert live["id"] == expected_id == values[ID_VAR]
    assert live["name"] == marked_name("Payment events", "e2e", "payment-events")
    assert live["status"] == "active"
    secret = values[SECRET_VAR]
    assert world.current_hash(live["id"]) == sha256(secret)

    again = world.run("plan", str(config), "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "No changes." in again.stdout

    # url and events change in place: the same webhook, the same secret
    config = world.write(
        {"payment-events": hook(url="https://hooks.example.com/v2", events=["send.failed"])}
    )
    plan = world.run("plan", str(config))
    assert "~ webhook payment-events (staging) will be updated in place" in plan.stdout
    assert '~ url    = "https://hooks.example.com/voltage" -> "https://hooks.example.com/v2"' in (
        plan.stdout
    )
    applied = world.run("apply", str(config), "--auto-approve")
    assert applied.exit_code == 0, applied.output
    (live,) = world.webhooks()
    assert live["id"] == expected_id
    assert live["url"] == "https://hooks.example.com/v2"
    assert live["events"] == [{"send": "failed"}]
    assert read_dotenv(sink)[SECRET_VAR] == secret
    assert world.current_hash(live["id"]) == sha256(secret)

    # stop, then start again
    config = world.write(
        {
            "payment-events": hook(
                url="https://hooks.example.com/v2", events=["send.failed"], status="stopped"
            )
        }
    )
    applied = world.run("apply", str(config), "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert '~ status = "active" -> "stopped"' in applied.stdout
    assert [h["status"] for h in world.webhooks()] == ["stopped"]
    config = world.write(
        {"payment-events": hook(url="https://hooks.example.com/v2", events=["send.failed"])}
    )
    applied = world.run("apply", str(config), "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert [h["status"] for h in world.webhooks()] == ["active"]
    assert world.run("plan", str(config), "--detailed-exitcode").exit_code == 0

    # removed from the configuration: deleted only with --allow-delete
    config = world.write({})
    refused = world.run("apply", str(config), "--auto-approve")
    assert refused.exit_code == 5, refused.output
    assert "--allow-delete" in refused.output
    assert [h["status"] for h in world.webhooks()] == ["active"]
    deleted = world.run("apply", str(config), "--auto-approve", "--allow-delete")
    assert deleted.exit_code == 0, deleted.output
    assert "- webhook payment-events (staging) will be destroyed" in deleted.stdout
    assert [h["status"] for h in world.webhooks()] == ["deleted"]
    assert world.run("plan", str(config), "--detailed-exitcode").exit_code == 0

    # declared again: the deleted id is never reused, a new generation is created
    config = world.write({"payment-events": hook()})
    applied = world.run("apply", str(config), "--auto-approve")
    assert applied.exit_code == 0, applied.output
    ids = sorted(h["id"] for h in world.webhooks() if h["status"] == "active")
    new_id = webhook_id(
        DEMO_ORGANIZATION_ID, DEMO_STAGING_ENVIRONMENT_ID, "e2e", "payment-events", 1
    )
    assert ids == [new_id]
    assert read_dotenv(sink)[ID_VAR] == new_id
    assert world.current_hash(new_id) == sha256(read_dotenv(sink)[SECRET_VAR])


def test_moving_to_another_environment_is_a_replacement(world: World) -> None:
    config = world.write({"payment-events": hook(status="stopped")})
    assert world.run("apply", str(config), "--auto-approve").exit_code == 0
    (live,) = world.webhooks()
    assert live["status"] == "stopped"  # created, then stopped
    config = world.write({"payment-events": hook(environment="production", status="stopped")})
    plan = world.run("plan", str(config))
    assert "-/+ webhook payment-events (production) must be replaced" in plan.stdout
    assert "# forces replacement" in plan.stdout
    refused = world.run("apply", str(config), "--auto-approve")
    assert refused.exit_code == 5, refused.output
    applied = world.run("apply", str(config), "--auto-approve", "--allow-replace")
    assert applied.exit_code == 0, applied.output
    by_status = {(h["environment_id"], h["status"]) for h in world.webhooks()}
    assert by_status == {
        (DEMO_STAGING_ENVIRONMENT_ID, "deleted"),
        (DEMO_PRODUCTION_ENVIRONMENT_ID, "stopped"),
    }
    values = read_dotenv(world.tmp / "secrets" / "payment-events.env")
    assert world.current_hash(values[ID_VAR]) == sha256(values[SECRET_VAR])


def test_unmanaged_and_copied_marker_webhooks_are_listed_and_never_touched(world: World) -> None:
    def create(hook_id: str, name: str) -> None:
        world.api.post(
            f"/organizations/{DEMO_ORGANIZATION_ID}/environments/{DEMO_STAGING_ENVIRONMENT_ID}"
            "/webhooks",
            json={
                "id": hook_id,
                "url": "https://other.example.com",
                "name": name,
                "events": [{"send": "succeeded"}],
            },
        ).raise_for_status()

    create("11111111-2222-4333-8444-555555555555", "Hand made")
    # a name carrying this stack's marker, on an id voltage-iac would never have chosen
    create("11111111-2222-4333-8444-666666666666", marked_name("Copied", "e2e", "payment-events"))
    wait_until(lambda: len(world.webhooks()) == 2)
    config = world.write({})
    plan = world.run("plan", str(config))
    assert plan.exit_code == 0, plan.output
    assert "Unmanaged resources" in plan.stdout or "Unmanaged webhooks" in plan.stdout
    assert "Hand made (11111111-2222-4333-8444-555555555555) in staging" in plan.stdout
    assert "11111111-2222-4333-8444-666666666666" in plan.stdout
    assert "No changes." in plan.stdout
    applied = world.run("apply", str(config), "--auto-approve", "--allow-delete")
    assert applied.exit_code == 0, applied.output
    assert sorted(h["status"] for h in world.webhooks()) == ["active", "active"]


def test_import_adopts_hand_made_webhooks_pinned_by_id_then_manages_them(world: World) -> None:
    hand_made = "11111111-2222-4333-8444-777777777777"
    world.api.post(
        f"/organizations/{DEMO_ORGANIZATION_ID}/environments/{DEMO_STAGING_ENVIRONMENT_ID}"
        "/webhooks",
        json={
            "id": hand_made,
            "url": "https://legacy.example.com/hooks",
            "name": "Legacy alerts",
            "events": [{"send": "failed"}, {"receive": "completed"}],
        },
    ).raise_for_status()
    wait_until(lambda: len(world.webhooks()) == 1)
    config = world.write({})

    imported = world.runner.invoke(
        cli,
        ["import", str(config), "--environment", "staging", "--api-url", world.emu.base_url],
        env=world.env,
        catch_exceptions=False,
    )
    assert imported.exit_code == 0, imported.output
    assert "rotate-secret CONFIG webhook legacy-alerts" in imported.stderr
    hooks = yaml.safe_load(imported.stdout)["webhooks"]
    assert hooks == {
        "legacy-alerts": {
            "id": hand_made,
            "name": "Legacy alerts",
            "environment": "staging",
            "url": "https://legacy.example.com/hooks",
            "events": ["receive.completed", "send.failed"],
            "secret": {"file": "secrets/legacy-alerts.env"},
        }
    }

    config = world.write(hooks)
    plan = world.run("plan", str(config), "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    assert "No changes." in plan.stdout and hand_made not in plan.stdout  # not unmanaged

    # the adopted webhook is now managed in place: a url change updates the same id
    hooks["legacy-alerts"]["url"] = "https://legacy.example.com/v2"
    config = world.write(hooks)
    applied = world.run("apply", str(config), "--auto-approve")
    assert applied.exit_code == 0, applied.output
    (live,) = world.webhooks()
    assert live["id"] == hand_made and live["url"] == "https://legacy.example.com/v2"
    assert world.run("plan", str(config), "--detailed-exitcode").exit_code == 0


def test_rotate_secret_hands_a_secret_to_an_imported_webhook(world: World) -> None:
    # `import` tells the user to run rotate-secret for an adopted webhook (its secret
    # cannot be read back); that command must find the webhook by its pinned id.
    hand_made = "11111111-2222-4333-8444-888888888888"
    world.api.post(
        f"/organizations/{DEMO_ORGANIZATION_ID}/environments/{DEMO_STAGING_ENVIRONMENT_ID}"
        "/webhooks",
        json={
            "id": hand_made,
            "url": "https://legacy.example.com/hooks",
            "name": "Legacy alerts",
            "events": [{"send": "failed"}],
        },
    ).raise_for_status()
    wait_until(lambda: len(world.webhooks()) == 1)
    empty = world.write({})
    imported = world.runner.invoke(
        cli,
        ["import", str(empty), "--environment", "staging", "--api-url", world.emu.base_url],
        env=world.env,
        catch_exceptions=False,
    )
    assert imported.exit_code == 0, imported.output
    config = world.write(yaml.safe_load(imported.stdout)["webhooks"])
    rotated = world.run("rotate-secret", str(config), "webhook", "legacy-alerts")
    assert rotated.exit_code == 0, rotated.output
    values = read_dotenv(world.tmp / "secrets" / "legacy-alerts.env")
    assert values[variable_names("legacy-alerts")[0]] == hand_made
    secret = values[variable_names("legacy-alerts")[1]]
    assert world.current_hash(hand_made) == sha256(secret)
    assert_nowhere(secret, {"rotate output": rotated.output})
    assert world.run("plan", str(config), "--detailed-exitcode").exit_code == 0


def test_a_webhook_id_pinned_twice_is_refused_at_validate(world: World) -> None:
    pinned = "11111111-2222-4333-8444-777777777777"
    config = world.write({"a": hook(id=pinned), "b": hook(name="Other", id=pinned.upper())})
    result = world.run("validate", str(config))
    assert result.exit_code == 3
    assert f"webhook id {pinned} is already pinned by webhook `a`" in result.output


# -- the secret ---------------------------------------------------------------------------


def test_the_secret_reaches_the_sink_and_no_output_or_other_file(world: World) -> None:
    config = world.write(
        {
            "payment-events": hook(),
            "audit": hook(
                name="Audit", events=["receive.failed"], secret={"file": "secrets/all.json"}
            ),
        }
    )
    outputs: dict[str, str] = {}

    def run(label: str, *argv: str, code: int = 0) -> None:
        done = world.run_process("-vv", "--debug", *argv)
        outputs[f"{label} stdout"] = done.stdout
        outputs[f"{label} stderr"] = done.stderr
        assert done.returncode == code, done.stdout + done.stderr

    run("apply", "apply", str(config), "--auto-approve")
    assert "GET " in outputs["apply stderr"]  # -vv really logged the requests
    sink = world.tmp / "secrets" / "payment-events.env"
    json_sink = world.tmp / "secrets" / "all.json"
    first = read_dotenv(sink)[SECRET_VAR]
    audit = json.loads(json_sink.read_text())
    assert stat.S_IMODE(json_sink.stat().st_mode) == 0o600
    audit_secret = audit[variable_names("audit")[1]]
    assert world.current_hash(audit[variable_names("audit")[0]]) == sha256(audit_secret)

    run("plan", "plan", str(config), "--out", str(world.tmp / "plan.json"))
    run("plan-json", "plan", str(config), "--format", "json")
    run("plan-md", "plan", str(config), "--format", "markdown")
    run("drift", "drift", str(config), "--format", "junit", "--output", str(world.tmp / "d.xml"))
    run("rotate", "rotate-secret", str(config), "webhook", "payment-events")
    assert "signing secret handed to file" in outputs["rotate stdout"]
    second = read_dotenv(sink)[SECRET_VAR]
    assert second != first
    hook_id = read_dotenv(sink)[ID_VAR]
    assert world.current_hash(hook_id) == sha256(second)

    files = {}
    for path in world.tmp.rglob("*"):
        if path.is_file() and path not in (sink, json_sink):
            files[str(path)] = path.read_bytes().decode("utf-8", "replace")
    assert any(name.endswith("plan.json") for name in files)
    assert any(name.endswith(".log") for name in files)  # the emulator's own log
    for secret in (first, second, audit_secret):
        assert_nowhere(secret, outputs)
        assert_nowhere(secret, files)


def test_a_failing_sink_command_is_reported_with_the_fix(world: World) -> None:
    failing = [sys.executable, "-c", "import sys; sys.stdin.read(); print('ECHOED'); sys.exit(3)"]
    config = world.write({"payment-events": hook(secret={"command": failing})})
    applied = world.run("apply", str(config), "--auto-approve")
    assert applied.exit_code == 1, applied.output
    assert "exited with status 3" in applied.output
    assert "ECHOED" not in applied.output  # the command's output is never shown
    assert f"voltage-iac rotate-secret {config} webhook payment-events" in applied.output
    assert [h["status"] for h in world.webhooks()] == ["active"]  # the webhook was made
    # a re-plan has nothing to create: the fix is the rotation, not a second webhook
    assert world.run("plan", str(config), "--detailed-exitcode").exit_code == 0

    received = world.tmp / "received.txt"
    writer = [
        sys.executable,
        "-c",
        "import os, sys; open(sys.argv[1], 'w').write(os.environ['VOLTAGE_WEBHOOK_KEY'] + "
        "'\\n' + sys.stdin.read())",
        str(received),
    ]
    config = world.write({"payment-events": hook(secret={"command": writer})})
    rotated = world.run("rotate-secret", str(config), "webhook", "payment-events")
    assert rotated.exit_code == 0, rotated.output
    assert "the standard input of" in rotated.stdout
    key, secret = received.read_text().split("\n")
    assert key == "payment-events"
    (live,) = world.webhooks()
    assert world.current_hash(live["id"]) == sha256(secret)
    assert_nowhere(secret, {"rotate output": rotated.output})


def test_a_lost_create_answer_is_resolved_without_a_second_create(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    creates: list[str] = []
    real = VoltageClient.create_webhook

    def counting(self: VoltageClient, org: str, env: str, body: dict[str, Any]) -> Any:
        creates.append(body["id"])
        return real(self, org, env, body)

    monkeypatch.setattr(VoltageClient, "create_webhook", counting)
    world.emu.admin.post(
        world.emu.admin_url + "/faults/schedule",
        json={
            "fault": "secret_dropped",
            "method": "POST",
            "path_contains": "/webhooks",
            "times": 1,
        },
    ).raise_for_status()
    config = world.write({"payment-events": hook()})
    applied = world.run("apply", str(config), "--auto-approve")
    assert applied.exit_code == 1, applied.output
    assert "must be rotated" in applied.output
    assert f"voltage-iac rotate-secret {config} webhook payment-events" in applied.output
    assert len(creates) == 1
    assert len(world.webhooks()) == 1
    assert not (world.tmp / "secrets" / "payment-events.env").exists()

    assert world.run("plan", str(config), "--detailed-exitcode").exit_code == 0
    rotated = world.run("rotate-secret", str(config), "webhook", "payment-events")
    assert rotated.exit_code == 0, rotated.output
    values = read_dotenv(world.tmp / "secrets" / "payment-events.env")
    assert world.current_hash(values[ID_VAR]) == sha256(values[SECRET_VAR])
    assert len(creates) == 1


def test_a_lost_rotation_answer_is_rotated_again(world: World) -> None:
    config = world.write({"payment-events": hook()})
    assert world.run("apply", str(config), "--auto-approve").exit_code == 0
    world.emu.admin.post(
        world.emu.admin_url + "/faults/schedule",
        json=[
            {"fault": "secret_dropped", "method": "POST", "path_contains": "/keys", "times": 1},
            {"fault": "rotation_fails", "method": "POST", "path_contains": "/keys", "times": 1},
        ],
    ).raise_for_status()
    rotated = world.run("rotate-secret", str(config), "webhook", "payment-events")
    assert rotated.exit_code == 0, rotated.output
    values = read_dotenv(world.tmp / "secrets" / "payment-events.env")
    assert world.current_hash(values[ID_VAR]) == sha256(values[SECRET_VAR])


def test_rotate_secret_refuses_what_it_cannot_rotate(world: World) -> None:
    config = world.write({"payment-events": hook()})
    missing = world.run("rotate-secret", str(config), "webhook", "payment-events")
    assert missing.exit_code == 1
    assert "does not exist yet" in missing.output and "run apply" in missing.output
    typo = world.run("rotate-secret", str(config), "webhook", "payment-event")
    assert typo.exit_code == 3
    assert "did you mean `payment-events`?" in typo.output
    wallet = world.run("rotate-secret", str(config), "wallet", "payment-events")
    assert wallet.exit_code == 3
    assert "has no secret to rotate" in wallet.output


# -- reports ------------------------------------------------------------------------------


def test_json_markdown_and_drift_cover_webhooks(world: World) -> None:
    config = world.write({"payment-events": hook()})
    doc = json.loads(world.run("plan", str(config), "--format", "json").stdout)
    (change,) = doc["changes"]
    assert (change["kind"], change["key"], change["action"]) == (
        "webhook",
        "payment-events",
        "create",
    )
    markdown = world.run("plan", str(config), "--format", "markdown").stdout
    assert "webhook" in markdown and "payment-events" in markdown
    assert world.run("apply", str(config), "--auto-approve").exit_code == 0

    (live,) = world.webhooks()
    world.api.patch(
        f"/organizations/{DEMO_ORGANIZATION_ID}/environments/{DEMO_STAGING_ENVIRONMENT_ID}"
        f"/webhooks/{live['id']}",
        json={"events": [{"send": "succeeded"}], "url": "https://evil.example.com"},
    ).raise_for_status()
    wait_until(lambda: world.webhooks()[0]["url"] == "https://evil.example.com")
    text = world.run("drift", str(config))
    assert text.exit_code == 2, text.output
    assert "webhook payment-events" in text.stdout
    assert "url" in text.stdout and "https://evil.example.com" in text.stdout
    junit = world.run("drift", str(config), "--format", "junit")
    assert 'classname="voltage-iac.e2e.webhook"' in junit.stdout
    assert "<failure" in junit.stdout


# -- validate -----------------------------------------------------------------------------


def test_validate_refuses_bad_events_urls_names_and_sinks(tmp_path: Path) -> None:
    doc = config_doc(
        {},
        webhooks={
            "typo": hook(events=["send.succeded"]),
            "ftp": hook(name="Other", url="ftp://hooks.example.com"),
            "marker": hook(name="Mine [iac:e2e:marker]"),
            "twin": hook(name="payment  EVENTS"),
            "nosink": {k: v for k, v in hook(name="No sink").items() if k != "secret"},
            "yaml": hook(name="Yaml", secret={"file": "more.yaml"}),
            "both": hook(name="Both", secret={"file": "a.env", "command": ["true"]}),
        },
    )
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 3, result.output
    out = result.output
    assert "unknown event type `send.succeded`" in out
    assert "did you mean `send.succeeded`?" in out
    assert "`ftp://hooks.example.com` is not an http(s) URL" in out
    assert "contains `[iac:`" in out
    assert "already used by webhook" in out
    assert "missing required field `secret`" in out
    assert "is a YAML file" in out
    assert "names both a file and a command" in out
    assert "Traceback" not in out


def test_webhooks_on_lnbits_are_refused_by_the_declaration(tmp_path: Path) -> None:
    doc = {
        "version": 1,
        "stack": "tips",
        "provider": {"kind": "lnbits", "url": "http://127.0.0.1:5000"},
        "wallets": {"tips": {"name": "Tips"}},
        "webhooks": {"payment-events": hook()},
    }
    path = tmp_path / "lnbits.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 3, result.output
    assert "`webhooks` is not supported by the lnbits provider" in result.output
    assert "Voltage API only" in result.output


def test_the_example_validates_and_applies_on_the_demo_seed(world: World) -> None:
    example = (REPO / "examples" / "webhooks.yaml").read_text(encoding="utf-8")
    path = world.tmp / "webhooks.yaml"
    path.write_text(example, encoding="utf-8")
    assert world.run("validate", str(path)).exit_code == 0
    applied = world.run("apply", str(path), "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert world.run("plan", str(path), "--detailed-exitcode").exit_code == 0
    sinks = [p for p in (world.tmp / "secrets").iterdir()]
    assert sinks and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in sinks)
    assert re.search(r"whsec_", "".join(p.read_text() for p in sinks))


def test_validate_counts_every_kind_it_checked(world: World) -> None:
    config = world.write({"payment-events": hook(), "audit": hook(name="Audit")})
    result = world.run("validate", str(config))
    assert result.exit_code == 0, result.output
    assert "0 wallet(s), 2 webhook(s) in 1 environment(s), provider voltage." in result.stdout
