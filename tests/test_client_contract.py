"""Contract tests of the HTTP client against the official Voltage OpenAPI document.

What the client puts on the wire (paths, methods, query parameters, JSON bodies, the
api-key header) must be what the contract declares for each operation, and every error
answer the contract documents for those operations must come out as the right typed
error. The contract lives outside the project, in ../shared/reference/; these tests skip
when it is absent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import respx
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from voltage_iac.client import VoltageClient
from voltage_iac.errors import (
    ApiError,
    AuthError,
    InvalidRequestError,
    NotFoundError,
    ServerError,
    WriteOutcomeUnknown,
)
from voltage_iac.secret import Secret

CONTRACT_PATH = Path(__file__).resolve().parents[1].parent / "shared/reference/voltage-openapi.json"
CONTRACT: dict[str, Any] | None = (
    json.loads(CONTRACT_PATH.read_text(encoding="utf-8")) if CONTRACT_PATH.exists() else None
)
pytestmark = pytest.mark.skipif(
    CONTRACT is None, reason=f"the Voltage OpenAPI contract is not at {CONTRACT_PATH}"
)

CONTRACT_URI = "urn:voltage-openapi"
BASE = "https://api.voltage.test/v1"
KEY = "sk-test-contract-key"
ORG = "0b9c1e7e-55a2-4f2b-9a53-0f6a3f1f0a01"
ENV = "123e4567-e89b-12d3-a456-426614174000"
ENV_2 = "223e4567-e89b-12d3-a456-426614174000"
WALLET = "7a68a525-9d11-4c1e-a3dd-1c2bf1378ba2"
LINE = "7df75323-84f1-4699-97da-776380a0aa81"
TEMPLATE = "5f0c6e0a-2a6b-4c59-9c1e-6d8a1f3b2c10"

NEW_WALLET = {
    "id": WALLET,
    "environment_id": ENV,
    "line_of_credit_id": LINE,
    "name": "payouts-eu",
    "network": "mutinynet",
    "limit": 100_000_000,
    "metadata": {"team": "payouts", "cost-centre": "42"},
}
POLICIES_WITH_VALUES = {
    "max_payment_size_sats": 50_000,
    "transactions_per_minute": 30,
    "send_volume_limit_sats": 5_000_000,
    "template_id": TEMPLATE,
    "ofac_compliant": True,
    "processing_fee": {"send_basis_points": 250, "receive_basis_points": 0},
}
POLICIES_WITH_NULLS = dict.fromkeys(POLICIES_WITH_VALUES)

Call = Callable[[VoltageClient], Any]

# operationId -> (how the client performs it, what kind of operation it is)
OPERATIONS: dict[str, tuple[Call, str]] = {
    "get_all_organizations_wallets_as_user": (
        lambda c: c.list_wallets(ORG, ENV, inactive=True),
        "list",
    ),
    "get_wallet": (lambda c: c.get_wallet(ORG, WALLET), "get"),
    "create_wallet": (lambda c: c.create_wallet(ORG, NEW_WALLET), "write"),
    "update_wallet": (lambda c: c.update_wallet(ORG, WALLET, "payouts-europe"), "write"),
    "delete_wallet": (lambda c: c.delete_wallet(ORG, WALLET), "write"),
    "get_wallet_policies": (lambda c: c.get_policies(ORG, WALLET), "get"),
    "update_wallet_policies": (
        lambda c: c.update_policies(ORG, WALLET, POLICIES_WITH_VALUES),
        "write",
    ),
    "get_lines_of_credit_summaries_as_user": (
        lambda c: c.line_of_credit_summaries(ORG, environment_ids=[ENV, ENV_2]),
        "list",
    ),
    "get_line_of_credit_summary_as_user": (lambda c: c.line_of_credit_summary(ORG, LINE), "get"),
}

# Every request body the client sends, by operationId.
BODIES: list[tuple[str, str, Call]] = [
    ("create_wallet", "full", lambda c: c.create_wallet(ORG, NEW_WALLET)),
    (
        "create_wallet",
        "without metadata",
        lambda c: c.create_wallet(ORG, {k: v for k, v in NEW_WALLET.items() if k != "metadata"}),
    ),
    (
        "create_wallet",
        "zero limit, testnet3",
        lambda c: c.create_wallet(ORG, {**NEW_WALLET, "limit": 0, "network": "testnet3"}),
    ),
    ("update_wallet", "name", lambda c: c.update_wallet(ORG, WALLET, "payouts-europe")),
    (
        "update_wallet_policies",
        "values",
        lambda c: c.update_policies(ORG, WALLET, POLICIES_WITH_VALUES),
    ),
    (
        "update_wallet_policies",
        "nulls",
        lambda c: c.update_policies(ORG, WALLET, POLICIES_WITH_NULLS),
    ),
    (
        "update_wallet_policies",
        "one field",
        lambda c: c.update_policies(ORG, WALLET, {"transactions_per_minute": None}),
    ),
]


def _operations_by_id() -> dict[str, tuple[str, str, dict[str, Any]]]:
    assert CONTRACT is not None
    found = {}
    for template, item in CONTRACT["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "operationId" in operation:
                found[operation["operationId"]] = (template, method.upper(), operation)
    return found


def _error_examples() -> list[Any]:
    """(operationId, status, example name, example body) for every documented error."""
    if CONTRACT is None:
        return []
    cases = []
    by_id = _operations_by_id()
    for operation_id in OPERATIONS:
        _, _, operation = by_id[operation_id]
        for status, response in operation["responses"].items():
            if not status.isdigit() or int(status) < 400:
                continue
            content = response.get("content", {}).get("application/json", {})
            for name, example in content.get("examples", {}).items():
                cases.append(
                    pytest.param(
                        operation_id,
                        int(status),
                        example["value"],
                        id=f"{operation_id}-{status}-{name}",
                    )
                )
    return cases


def _pointer(*parts: str) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    assert CONTRACT is not None
    return CONTRACT


@pytest.fixture(scope="module")
def registry(contract: dict[str, Any]) -> Registry:
    resource = Resource(contents=contract, specification=DRAFT202012)
    return Registry().with_resource(CONTRACT_URI, resource)


def _validator(registry: Registry, pointer: str) -> Draft202012Validator:
    return Draft202012Validator(
        {"$ref": f"{CONTRACT_URI}#{pointer}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def _capture(call: Call) -> list[httpx.Request]:
    """Run one client call against a catch-all mock that accepts everything."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            return httpx.Response(202)
        if request.url.path.endswith(("/wallets", "/summaries")):
            return httpx.Response(200, json=[])
        return httpx.Response(200, json={})

    with respx.mock(base_url=BASE) as router:
        route = router.route().mock(side_effect=answer)
        with VoltageClient(BASE, Secret(KEY), sleep=lambda _: None) as client:
            call(client)
        return [c.request for c in route.calls]


def _match(contract: dict[str, Any], request: httpx.Request) -> tuple[str, dict[str, str]]:
    """The contract path template the request's path matches, and its path parameters."""
    server_prefix = contract["servers"][0]["url"].rstrip("/")
    path = request.url.path
    assert path.startswith(server_prefix + "/"), path
    path = path[len(server_prefix) :]
    for template in contract["paths"]:
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        found = re.fullmatch(pattern, path)
        if found:
            return template, {k: unquote(v) for k, v in found.groupdict().items()}
    raise AssertionError(f"{request.method} {path} is not a path of the contract")


def _query_value(schema: dict[str, Any], values: list[str]) -> Any:
    """A query parameter's wire values as the JSON value its schema describes."""
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if "array" in kinds:
        return values
    assert len(values) == 1, f"repeated a parameter that is not an array: {values}"
    if "boolean" in kinds:
        assert values[0] in ("true", "false"), values[0]
        return values[0] == "true"
    return values[0]


@pytest.mark.parametrize("operation_id", list(OPERATIONS))
def test_client_requests_match_the_contract(
    contract: dict[str, Any], registry: Registry, operation_id: str
) -> None:
    call, _ = OPERATIONS[operation_id]
    requests = _capture(call)
    assert len(requests) == 1
    request = requests[0]

    template, path_params = _match(contract, request)
    operation = contract["paths"][template].get(request.method.lower())
    assert operation is not None, f"{request.method} {template} is not in the contract"
    assert operation["operationId"] == operation_id

    declared = {(p["in"], p["name"]): p for p in operation.get("parameters", [])}
    for name, value in path_params.items():
        parameter = declared[("path", name)]
        errors = list(
            Draft202012Validator(
                parameter["schema"], format_checker=Draft202012Validator.FORMAT_CHECKER
            ).iter_errors(value)
        )
        assert not errors, f"path parameter {name}={value!r}: {errors[0].message}"

    sent = request.url.params
    for name in dict.fromkeys(sent.keys()):
        assert ("query", name) in declared, f"{operation_id} has no query parameter {name!r}"
        parameter = declared[("query", name)]
        # Repeated names are the contract's default array style (form, exploded).
        assert parameter.get("style", "form") == "form"
        assert parameter.get("explode", True) is True
        value = _query_value(parameter["schema"], sent.get_list(name))
        index = operation["parameters"].index(parameter)
        pointer = _pointer(
            "paths", template, request.method.lower(), "parameters", str(index), "schema"
        )
        errors = list(_validator(registry, pointer).iter_errors(value))
        assert not errors, f"query parameter {name}={value!r}: {errors[0].message}"
    for (where, name), parameter in declared.items():
        if parameter.get("required"):
            assert where != "query" or name in sent, f"required query parameter {name} missing"

    schemes = contract["components"]["securitySchemes"]
    assert {"api_key": []} in operation["security"]
    assert request.headers[schemes["api_key"]["name"]] == KEY

    if "requestBody" in operation:
        assert request.headers["content-type"] in operation["requestBody"]["content"]
    else:
        assert request.content == b""


@pytest.mark.parametrize(
    ("operation_id", "case", "call"), BODIES, ids=[f"{b[0]}-{b[1]}" for b in BODIES]
)
def test_request_bodies_validate_against_the_contract(
    contract: dict[str, Any], registry: Registry, operation_id: str, case: str, call: Call
) -> None:
    template, method, _ = _operations_by_id()[operation_id]
    (request,) = _capture(call)
    assert request.method == method
    body = json.loads(request.content)
    pointer = _pointer(
        "paths", template, method.lower(), "requestBody", "content", "application/json", "schema"
    )
    errors = list(_validator(registry, pointer).iter_errors(body))
    assert not errors, f"{operation_id} ({case}) body refused: {errors[0].message}"


def test_the_body_check_itself_catches_a_wrong_body(registry: Registry) -> None:
    template, method, _ = _operations_by_id()["update_wallet_policies"]
    pointer = _pointer(
        "paths", template, method.lower(), "requestBody", "content", "application/json", "schema"
    )
    validator = _validator(registry, pointer)
    assert list(validator.iter_errors({"max_payment_size_sats": 0}))
    assert list(validator.iter_errors({"unknown_policy": 1}))
    assert list(validator.iter_errors({"template_id": "not-a-uuid"}))


@pytest.mark.parametrize("operation_id", list(OPERATIONS))
def test_success_shapes_are_what_the_client_expects(
    contract: dict[str, Any], operation_id: str
) -> None:
    _, kind = OPERATIONS[operation_id]
    _, _, operation = _operations_by_id()[operation_id]
    responses = operation["responses"]
    if kind == "write":
        assert "202" in responses
        return
    schema = responses["200"]["content"]["application/json"]["schema"]
    if kind == "list":
        assert schema["type"] == "array"
    else:
        name = schema["$ref"].rsplit("/", 1)[-1]
        assert contract["components"]["schemas"][name]["type"] == "object"


def _expected(kind: str, status: int) -> type[ApiError] | None:
    if status in (401, 403):
        return AuthError
    if status == 404:
        return None if kind == "get" else NotFoundError
    if status >= 500:
        return WriteOutcomeUnknown if kind == "write" else ServerError
    return InvalidRequestError


@pytest.mark.parametrize(("operation_id", "status", "example"), _error_examples())
def test_documented_error_examples_map_to_typed_errors(
    operation_id: str, status: int, example: dict[str, Any]
) -> None:
    call, kind = OPERATIONS[operation_id]
    expected = _expected(kind, status)
    with respx.mock(base_url=BASE) as router:
        route = router.route().respond(status, json=example, headers={"x-request-id": "req-1"})
        with VoltageClient(BASE, Secret(KEY), max_attempts=1, sleep=lambda _: None) as client:
            if expected is None:
                assert call(client) is None
                return
            with pytest.raises(expected) as caught:
                call(client)
        assert route.call_count == 1
    err = caught.value
    assert type(err) is expected
    assert err.status == status
    assert err.error_type == example["error"]["type"]
    assert err.request_id == "req-1"
    assert example["error"]["type"] in err.message
