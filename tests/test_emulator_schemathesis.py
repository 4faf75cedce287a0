"""Schemathesis against the served emulator: generated requests (valid and invalid) for
every operation the emulator implements, and every answer must be one the official
contract declares, in its schema, never a server error.

The emulator runs as `voltage-iac emulator serve` on 127.0.0.1 (a child process); the
contract is read from ../shared. Path parameters are mostly pointed at the demo world,
so requests reach the business rules and not only the access checks. Budget: a few
examples per operation and a wall-clock cap by default; more with VOLTAGE_IAC_SLOW=1.
"""

from __future__ import annotations

import json
import os
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

CONTRACT = Path(__file__).resolve().parents[1].parent / "shared/reference/voltage-openapi.json"
if not CONTRACT.is_file():
    pytest.skip(f"the official contract is not available at {CONTRACT}", allow_module_level=True)

import schemathesis  # noqa: E402
from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.served import TEST_KEY, ServedEmulator, served_emulator  # noqa: E402
from voltage_iac.emulator.seed import (  # noqa: E402
    DEMO_LEGACY_WALLET_ID,
    DEMO_ORGANIZATION_ID,
    DEMO_STAGING_ENVIRONMENT_ID,
    DEMO_STAGING_LINE_ID,
    demo_seed,
)

SLOW = os.environ.get("VOLTAGE_IAC_SLOW") == "1"
EXAMPLES = 120 if SLOW else 12  # per operation
BUDGET_SECONDS = 1200.0 if SLOW else 120.0  # for the whole module

OPERATIONS = [
    # wallets and policies
    "get_all_organizations_wallets_as_user",
    "create_wallet",
    "get_wallet",
    "update_wallet",
    "delete_wallet",
    "get_wallet_policies",
    "update_wallet_policies",
    # lines of credit
    "get_lines_of_credit_summaries_as_user",
    "get_line_of_credit_summary_as_user",
    # webhooks
    "get_webhooks_as_user",
    "create_webhook",
    "get_webhook",
    "update_webhook",
    "delete_webhook",
    "generate_webhook_key",
    "start_webhook_as_user",
    "stop_webhook_as_user",
    # receive payments
    "create_payment",
    "get_payment",
    "get_payments",
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _load_contract() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(CONTRACT.read_text(encoding="utf-8"))
    # `Asset` is a hex string in JSON bodies, declared `format: binary`: schemathesis would
    # generate raw bytes it cannot put in JSON. Only that format annotation is dropped.
    document["components"]["schemas"]["Asset"].pop("format", None)
    return document


schema = schemathesis.openapi.from_dict(_load_contract()).include(operation_id=OPERATIONS)
_budget = {"started": 0.0}  # set when the served emulator is up (not at import time)
_calls: dict[str, int] = {}


def _over_budget() -> bool:
    return time.monotonic() - _budget["started"] > BUDGET_SECONDS


WEBHOOK_ID = "0b0e5a8c-3d2f-4e1a-9b7c-6d5e4f3a2b1c"
PAYMENT_ID = "1c1f6b9d-4e3a-4f2b-8c8d-7e6f5a4b3c2d"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedEmulator]:
    with served_emulator(tmp_path_factory.mktemp("schemathesis")) as running:
        # A webhook and a receive with known ids, so generated cases can address them.
        seed = demo_seed()
        seed["webhooks"] = [
            {
                "id": WEBHOOK_ID,
                "environment_id": DEMO_STAGING_ENVIRONMENT_ID,
                "url": "https://hooks.example.com/voltage",
                "name": "schemathesis",
                "events": [{"receive": "completed"}],
            }
        ]
        running.admin.post(running.admin_url + "/seed", json=seed).raise_for_status()
        receive = {
            "id": PAYMENT_ID,
            "wallet_id": DEMO_LEGACY_WALLET_ID,
            "payment_kind": "bolt11",
            "amount": {"currency": "btc", "amount": 150_000},
        }
        created = running.admin.post(
            f"{running.base_url}/organizations/{DEMO_ORGANIZATION_ID}/environments/"
            f"{DEMO_STAGING_ENVIRONMENT_ID}/payments",
            json=receive,
            headers={"x-api-key": TEST_KEY},
        )
        assert created.status_code == 202, created.text
        _budget["started"] = time.monotonic()
        yield running


def _point_at_demo_world(case: Any) -> None:
    """Most cases address the demo organization, environment, wallet and line, so they
    get past the access checks; the rest keep their generated ids (403/404 paths)."""
    params = dict(case.path_parameters or {})
    roll = zlib.crc32(repr(sorted(params.items())).encode()) % 10
    if roll < 8:
        known = {
            "organization_id": DEMO_ORGANIZATION_ID,
            "environment_id": DEMO_STAGING_ENVIRONMENT_ID,
            "line_id": DEMO_STAGING_LINE_ID,
        }
        if roll < 4:
            known["wallet_id"] = DEMO_LEGACY_WALLET_ID
            known["webhook_id"] = WEBHOOK_ID
            known["payment_id"] = PAYMENT_ID
        for name, value in known.items():
            if name in params:
                params[name] = value
        case.path_parameters = params
    if isinstance(case.body, dict) and roll < 5:
        body = dict(case.body)
        if "wallet_id" in body:
            body["wallet_id"] = DEMO_LEGACY_WALLET_ID
        if "environment_id" in body:
            body["environment_id"] = DEMO_STAGING_ENVIRONMENT_ID
        if "line_of_credit_id" in body:
            body["line_of_credit_id"] = DEMO_STAGING_LINE_ID
        case.body = body


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_in_the_contract(case: Any, served: ServedEmulator) -> None:
    if _over_budget():
        pytest.skip(f"the module's time budget of {BUDGET_SECONDS:.0f} s is used up")
    _point_at_demo_world(case)
    headers = {**(case.headers or {}), "x-api-key": TEST_KEY}
    response = case.call(base_url=served.base_url, headers=headers, timeout=10)
    case.validate_response(response, checks=CHECKS)
    _calls[case.operation.label] = _calls.get(case.operation.label, 0) + 1


def test_schemathesis_reached_every_operation() -> None:
    """The generated test above ran for every implemented operation (none was left out
    by a typo in OPERATIONS or a filter)."""
    labels = {op.ok().label for op in schema.get_all_operations()}
    assert len(labels) == len(OPERATIONS)
    if not _calls:
        pytest.skip("runs after test_every_answer_is_in_the_contract, in the same session")
    if not _over_budget():
        assert set(_calls) == labels, sorted(labels - set(_calls))


def test_the_checks_catch_an_answer_outside_the_contract(served: ServedEmulator) -> None:
    """The same checks, fed a wrong answer, fail: a green run above means something."""
    operation = next(
        op.ok()
        for op in schema.get_all_operations()
        if op.ok().label.startswith("GET")
        and op.ok().path == "/organizations/{organization_id}/lines_of_credit/{line_id}/summary"
    )
    case = operation.Case(
        path_parameters={"organization_id": DEMO_ORGANIZATION_ID, "line_id": str(uuid.uuid4())}
    )
    # The admin state is JSON but not a SummaryLineOfCredit: answer it in the summary's place.
    response = requests.get(served.admin_url + "/state", timeout=10)
    response.request.url = served.base_url + case.formatted_path
    response.request.method = "GET"
    with pytest.raises(FailureGroup, match="Response violates schema"):
        case.validate_response(response, checks=CHECKS)
