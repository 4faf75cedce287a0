"""The webhook kind's pure rules, its ids and names, the contract's event types, and the
secret sinks (real files and real child processes)."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from voltage_iac import identity
from voltage_iac.diff import diff
from voltage_iac.kinds.webhook import (
    EVENT_TYPES,
    WEBHOOK,
    DesiredWebhook,
    LiveWebhook,
    api_events,
    marked_name,
    split_name,
    webhook_id,
)
from voltage_iac.model import DesiredState, Environment, LiveState, Ownership, frozen_map
from voltage_iac.plan import Action
from voltage_iac.providers.voltage_webhooks import parse_webhook
from voltage_iac.secret import Secret
from voltage_iac.secret_sink import SecretSink, SinkError, variable_names

ORG = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
STAGING = "5a0c7e9e-2b1d-4f3a-9c8e-1d2e3f4a5b6c"
PRODUCTION = "7b1d8f0f-3c2e-4a4b-8d9f-2e3f4a5b6c7d"
SECRET = Secret("whsec_Zr4Lq8VbN2mXc7TyK1pHs9dF")


def test_golden_webhook_id() -> None:
    """A webhook's id is how voltage-iac finds it again: these values must never change."""
    assert webhook_id(ORG, STAGING, "acme", "payment-events", 0) == (
        "5bbc0ff5-f557-5e46-b668-67cea312a669"
    )
    assert webhook_id(ORG, STAGING, "acme", "payment-events", 3) == (
        "89d99447-1fb3-53ef-87d0-42925607c01f"
    )


def test_ids_are_deterministic_per_input_and_apart_from_wallet_ids() -> None:
    base = webhook_id(ORG, STAGING, "acme", "payment-events")
    assert base == webhook_id(ORG.upper(), STAGING, "acme", "payment-events")
    others = {
        webhook_id(ORG, PRODUCTION, "acme", "payment-events"),
        webhook_id(ORG, STAGING, "other", "payment-events"),
        webhook_id(ORG, STAGING, "acme", "audit"),
        webhook_id(ORG, STAGING, "acme", "payment-events", 1),
        identity.wallet_id(ORG, STAGING, "acme", "payment-events"),
    }
    assert base not in others and len(others) == 5


def test_event_types_are_the_contracts(contract: dict[str, Any]) -> None:
    schemas = contract["components"]["schemas"]
    names = set()
    for option in schemas["EventTypes"]["oneOf"]:
        (kind,) = option["required"]
        ref = option["properties"][kind]["$ref"].rsplit("/", 1)[-1]
        names |= {f"{kind}.{event}" for event in schemas[ref]["enum"]}
    assert set(EVENT_TYPES) == names
    from voltage_iac.config.schema import load_schema

    enum = load_schema()["$defs"]["webhook"]["properties"]["events"]["items"]["enum"]
    assert set(enum) == names


def test_the_two_schema_copies_are_identical() -> None:
    root = Path(__file__).resolve().parents[1]
    shipped = (root / "voltage_iac" / "schemas" / "config.v1.json").read_text()
    assert (root / "schemas" / "config.v1.json").read_text() == shipped


def test_names_carry_the_marker_and_split_back() -> None:
    assert marked_name("Payment events", "acme", "payment-events") == (
        "Payment events [iac:acme:payment-events]"
    )
    assert split_name("Payment events [iac:acme:payment-events:2]") == (
        "Payment events",
        Ownership("acme", "payment-events", 2),
    )
    assert split_name("Hand made [iac:Not Valid]") == ("Hand made [iac:Not Valid]", None)
    with pytest.raises(ValueError):
        marked_name("Sneaky [iac:acme:x]", "acme", "payment-events")
    assert api_events(["send.failed", "receive.completed"]) == [
        {"send": "failed"},
        {"receive": "completed"},
    ]


def _raw(hook_id: str, name: str, **extra: Any) -> dict[str, Any]:
    raw = {
        "id": hook_id,
        "organization_id": ORG,
        "environment_id": STAGING,
        "url": "https://hooks.example.com",
        "name": name,
        "events": [{"send": "succeeded"}, {"receive": "failed"}],
        "status": "active",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    raw.update(extra)
    return raw


def test_ownership_needs_the_marker_and_the_id_it_derives() -> None:
    ours = webhook_id(ORG, STAGING, "acme", "payment-events")
    live = parse_webhook(_raw(ours, "Payments [iac:acme:payment-events]"), ORG)
    assert live.owner == Ownership("acme", "payment-events", 0)
    assert live.name == "Payments"
    assert live.events == ("receive.failed", "send.succeeded")
    copied = parse_webhook(
        _raw("11111111-2222-4333-8444-555555555555", "Payments [iac:acme:payment-events]"), ORG
    )
    assert copied.owner is None
    assert copied.name == "Payments [iac:acme:payment-events]"


@pytest.mark.parametrize(
    "change",
    [
        {"status": "paused"},
        {"events": [{"send": "exploded"}]},
        {"events": [{"send": "failed", "receive": "failed"}]},
        {"id": "not-a-uuid"},
        {"url": None},
    ],
)
def test_malformed_webhooks_are_refused(change: dict[str, Any]) -> None:
    from voltage_iac.errors import MalformedResponseError

    with pytest.raises(MalformedResponseError):
        parse_webhook(_raw(webhook_id(ORG, STAGING, "acme", "k"), "K", **change), ORG)


def _desired(**fields: Any) -> DesiredState:
    want = DesiredWebhook(
        key="payment-events",
        name="Payments",
        environment="staging",
        environment_id=STAGING,
        url="https://hooks.example.com",
        events=("receive.failed", "send.succeeded"),
        secret=SecretSink(file="s.env"),
    )
    want = DesiredWebhook(**{**want.__dict__, **fields})
    return DesiredState(
        stack="acme",
        organization_id=ORG,
        environments=frozen_map(
            {
                "staging": Environment("staging", STAGING, "mutinynet"),
                "production": Environment("production", PRODUCTION, "mainnet"),
            }
        ),
        resources=frozen_map({"webhook": frozen_map({want.key: want})}),
    )


def _live(**fields: Any) -> LiveState:
    base = dict(
        id=webhook_id(ORG, STAGING, "acme", "payment-events"),
        name="Payments",
        environment_id=STAGING,
        url="https://hooks.example.com",
        events=("receive.failed", "send.succeeded"),
        status="active",
        owner=Ownership("acme", "payment-events", 0),
    )
    base.update(fields)
    return LiveState(resources=frozen_map({"webhook": (LiveWebhook(**base),)}))


def test_field_rules() -> None:
    same = diff(_desired(events=("send.succeeded", "receive.failed")), _live())
    assert not same.has_changes  # events compare as a set
    plan = diff(_desired(url="https://new.example.com", status="stopped"), _live())
    (change,) = plan.actionable
    assert change.action is Action.UPDATE
    assert [f.field for f in change.fields] == ["url", "status"]
    assert [op.verb for op in WEBHOOK.operations(change, plan)] == ["update", "stop"]
    started = diff(_desired(), _live(status="stopped"))
    assert [op.verb for op in WEBHOOK.operations(started.actionable[0], started)] == ["start"]
    moved = diff(_desired(environment="production", environment_id=PRODUCTION), _live())
    (change,) = moved.actionable
    assert change.action is Action.REPLACE
    assert change.new_id == webhook_id(ORG, PRODUCTION, "acme", "payment-events", 1)
    assert change.reasons == ("the environment is fixed at creation",)
    created = diff(_desired(status="stopped"), LiveState())
    ops = WEBHOOK.operations(created.actionable[0], created)
    assert [(op.verb, op.id) for op in ops] == [
        ("create", webhook_id(ORG, STAGING, "acme", "payment-events")),
        ("stop", None),
    ]


def test_a_deleted_webhook_id_is_skipped() -> None:
    plan = diff(_desired(), _live(status="deleted", active=False))
    (change,) = plan.actionable
    assert change.action is Action.CREATE
    assert change.new_id == webhook_id(ORG, STAGING, "acme", "payment-events", 1)


# -- sinks ------------------------------------------------------------------------------


def test_a_dotenv_sink_keeps_other_lines_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "hooks.env"
    path.parent.mkdir()
    path.write_text("OTHER=1\n# a comment\nVOLTAGE_WEBHOOK_SECRET_PAYMENT_EVENTS=old\n")
    path.chmod(0o644)
    sink = SecretSink(file="deep/hooks.env", base_dir=str(tmp_path))
    sink.hand_over(SECRET, key="payment-events", resource_id="id-1")
    text = path.read_text()
    assert "OTHER=1\n# a comment\n" in text
    assert f"VOLTAGE_WEBHOOK_SECRET_PAYMENT_EVENTS={SECRET.reveal()}\n" in text
    assert "=old" not in text
    assert "VOLTAGE_WEBHOOK_ID_PAYMENT_EVENTS=id-1\n" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    SecretSink(file="deep/hooks.env", base_dir=str(tmp_path)).hand_over(
        Secret("whsec_second"), key="audit.log", resource_id="id-2"
    )
    text = path.read_text()
    assert SECRET.reveal() in text and "VOLTAGE_WEBHOOK_SECRET_AUDIT_LOG=whsec_second" in text
    assert [p.name for p in path.parent.iterdir()] == ["hooks.env"]  # no temporary left


def test_a_json_sink_and_one_it_will_not_overwrite(tmp_path: Path) -> None:
    sink = SecretSink(file="s.json", base_dir=str(tmp_path))
    sink.hand_over(SECRET, key="payment-events", resource_id="id-1")
    data = json.loads((tmp_path / "s.json").read_text())
    assert data == {
        "VOLTAGE_WEBHOOK_ID_PAYMENT_EVENTS": "id-1",
        "VOLTAGE_WEBHOOK_SECRET_PAYMENT_EVENTS": SECRET.reveal(),
    }
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(SinkError, match="not a JSON object"):
        SecretSink(file="bad.json", base_dir=str(tmp_path)).hand_over(
            SECRET, key="k", resource_id="i"
        )
    assert (tmp_path / "bad.json").read_text() == "[1, 2]"


def test_an_unwritable_sink_fails_without_the_secret(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    sink = SecretSink(file="file/inside.env", base_dir=str(tmp_path))
    with pytest.raises(SinkError) as caught:
        sink.hand_over(SECRET, key="k", resource_id="i")
    assert "cannot write" in str(caught.value)
    assert SECRET.reveal()[6:14] not in str(caught.value)


@pytest.mark.integration
def test_command_sinks_get_stdin_and_are_bounded(tmp_path: Path) -> None:
    out = tmp_path / "got"
    ok = SecretSink(
        command=(
            sys.executable,
            "-c",
            f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())",
        ),
        base_dir=str(tmp_path),
    )
    ok.hand_over(SECRET, key="k", resource_id="i")
    assert out.read_text() == SECRET.reveal()
    slow = SecretSink(
        command=(sys.executable, "-c", "import time; time.sleep(30)"),
        base_dir=str(tmp_path),
        timeout=0.5,
    )
    with pytest.raises(SinkError, match=r"did not finish within 0\.5 s"):
        slow.hand_over(SECRET, key="k", resource_id="i")
    missing = SecretSink(command=("no-such-program-voltage-iac",), base_dir=str(tmp_path))
    with pytest.raises(SinkError, match="was not found"):
        missing.hand_over(SECRET, key="k", resource_id="i")
    echoing = SecretSink(
        command=(sys.executable, "-c", "import sys; raise SystemExit(sys.stdin.read())"),
        base_dir=str(tmp_path),
    )
    with pytest.raises(SinkError) as caught:
        echoing.hand_over(SECRET, key="k", resource_id="i")
    assert "exited with status 1" in str(caught.value)
    assert SECRET.reveal()[6:14] not in str(caught.value)


def test_variable_names() -> None:
    assert variable_names("payment-events") == (
        "VOLTAGE_WEBHOOK_ID_PAYMENT_EVENTS",
        "VOLTAGE_WEBHOOK_SECRET_PAYMENT_EVENTS",
    )
    assert variable_names("a.b_c-9")[1] == "VOLTAGE_WEBHOOK_SECRET_A_B_C_9"
