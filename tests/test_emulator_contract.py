"""Every answer of the emulator, for every operation and status it produces, validates
against the schema the official contract declares for that operation and status."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from voltage_iac.emulator import EmbeddedEmulator, Faults

CONTRACT = Path(__file__).resolve().parents[1].parent / "shared/reference/voltage-openapi.json"
BASE = "urn:voltage-openapi"

ORG = "11111111-1111-4111-8111-111111111111"
STAGING = "22222222-2222-4222-8222-222222222222"
PROD = "33333333-3333-4333-8333-333333333333"
LINE = "55555555-5555-4555-8555-555555555555"
LINE_PROD = "66666666-6666-4666-8666-666666666666"
LINE_OFF = "77777777-7777-4777-8777-777777777777"
FUNDED = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
WRITE_KEY = "contract-write-key"
READ_KEY = "contract-read-key"
STAGING_KEY = "contract-staging-key"

SEED: dict[str, Any] = {
    "organization_id": ORG,
    "api_keys": [
        {"key": WRITE_KEY, "access": "write"},
        {"key": READ_KEY, "access": "read"},
        {"key": STAGING_KEY, "access": "read", "environment_id": STAGING},
    ],
    "environments": [
        {"id": STAGING, "network": "mutinynet"},
        {"id": PROD, "network": "mainnet"},
    ],
    "lines_of_credit": [
        {"id": LINE, "environment_id": STAGING, "network": "mutinynet", "limit": 1_000_000},
        {"id": LINE_PROD, "environment_id": PROD, "network": "mainnet", "limit": 1_000},
        {
            "id": LINE_OFF,
            "environment_id": STAGING,
            "network": "mutinynet",
            "limit": 1_000,
            "disabled": True,
        },
    ],
    "wallets": [
        {
            "id": FUNDED,
            "environment_id": STAGING,
            "line_of_credit_id": LINE,
            "name": "Funded",
            "limit": 10,
            "network": "mutinynet",
            "metadata": {"team": "finance"},
            "balance_msats": 99,
        }
    ],
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    if not CONTRACT.is_file():
        pytest.skip(f"the official contract is not available at {CONTRACT}")
    data: dict[str, Any] = json.loads(CONTRACT.read_text(encoding="utf-8"))
    return data


class ContractChecker:
    """Finds the operation of each response and validates it against the contract."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(BASE, resource)
        self.templates = []
        for template in document["paths"]:
            pattern = re.sub(r"\{[^}]+\}", "[^/]+", template)
            self.templates.append((re.compile(f"^{pattern}$"), template))
        self.seen: set[tuple[str, str, int]] = set()

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        matches = [
            template
            for pattern, template in self.templates
            if pattern.match(path) and method.lower() in self.document["paths"][template]
        ]
        assert matches, f"{method} {path} is not an operation of the contract"
        # A literal segment wins over a parameter (".../summary" over ".../{id}").
        chosen = min(matches, key=lambda t: t.count("{"))
        return chosen, self.document["paths"][chosen][method.lower()]

    def check(self, response: httpx.Response) -> httpx.Response:
        request = response.request
        path = request.url.path.removeprefix("/v1")
        template, operation = self.operation(request.method, path)
        status = str(response.status_code)
        declared = operation["responses"]
        assert status in declared, (
            f"{request.method} {template} answered {status}; the contract declares "
            f"{sorted(declared)}: {response.text}"
        )
        assert response.headers.get("x-request-id")
        content = declared[status].get("content")
        if content is None:
            assert response.content == b"", f"{status} must have an empty body"
        else:
            assert response.headers["content-type"].startswith("application/json")
            pointer = "/".join(
                part.replace("~", "~0").replace("/", "~1")
                for part in (
                    "paths",
                    template,
                    request.method.lower(),
                    "responses",
                    status,
                    "content",
                    "application/json",
                    "schema",
                )
            )
            validator = Draft202012Validator(
                {"$ref": f"{BASE}#/{pointer}"},
                registry=self.registry,
                format_checker=Draft202012Validator.FORMAT_CHECKER,
            )
            errors = sorted(validator.iter_errors(response.json()), key=lambda e: e.path)
            assert not errors, (
                f"{request.method} {template} {status} does not match the contract: "
                + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
            )
        self.seen.add((request.method, template, response.status_code))
        return response


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[tuple[EmbeddedEmulator, FakeClock]]:
    clock = FakeClock()
    faults = Faults(visibility_delay=1.0)
    with EmbeddedEmulator(tmp_path / "c.db", seed=SEED, faults=faults, clock=clock) as running:
        yield running, clock


def test_every_answer_matches_the_contract(
    contract: dict[str, Any], emu: tuple[EmbeddedEmulator, FakeClock]
) -> None:
    running, clock = emu
    checker = ContractChecker(contract)
    hooks = {"response": [lambda r: (r.read(), checker.check(r))]}

    def client(key: str | None = WRITE_KEY) -> httpx.Client:
        headers = {"x-api-key": key} if key else {}
        return httpx.Client(
            base_url=running.base_url, headers=headers, event_hooks=hooks, timeout=10.0
        )

    wallets = f"/organizations/{ORG}/wallets"
    wallet_id = str(uuid.uuid4())
    one = f"{wallets}/{wallet_id}"
    body = {
        "id": wallet_id,
        "environment_id": STAGING,
        "line_of_credit_id": LINE,
        "name": "contract wallet",
        "network": "mutinynet",
        "limit": 1_000,
        "metadata": {"purpose": "contract"},
    }
    with (
        client() as http,
        client(READ_KEY) as reader,
        client(None) as anonymous,
        client("wrong-key") as stranger,
        client(STAGING_KEY) as scoped,
    ):
        # Wallets: create and its refusals.
        http.post(wallets, json=body)
        http.post(wallets, json=body)  # 400 reused id
        http.post(wallets, json={**body, "id": str(uuid.uuid4()), "name": "no"})
        http.post(wallets, json={**body, "id": str(uuid.uuid4()), "limit": 10**9})
        http.post(wallets, json={**body, "id": str(uuid.uuid4()), "network": "mainnet"})
        http.post(wallets, json={**body, "id": str(uuid.uuid4()), "line_of_credit_id": LINE_OFF})
        http.post(wallets, json={**body, "id": str(uuid.uuid4()), "limit": -1})  # 422
        http.post(wallets, content=b"{}", headers={"content-type": "text/plain"})  # 415
        http.post(
            wallets,
            content=b'{"x": "' + b"a" * (1024 * 1024) + b'"}',
            headers={"content-type": "application/json"},
        )  # 413
        reader.post(wallets, json=body)  # 403
        anonymous.post(wallets, json=body)  # 400 missing_credentials
        stranger.post(wallets, json=body)  # 401
        # Reads before and after visibility.
        http.get(one)  # 404
        http.get(f"{wallets}/not-a-uuid")  # 400
        anonymous.get(wallets)
        stranger.get(wallets)
        reader.get(f"/organizations/{uuid.uuid4()}/wallets")  # 403
        http.get(wallets, params={"inactive": "perhaps"})  # 400
        clock.now += 1.0
        http.get(one)
        http.get(wallets)
        scoped.get(wallets)
        # Rename.
        http.patch(one, json={"name": "renamed"})
        http.patch(one, json={"name": "no"})  # 400
        http.patch(one, json={"name": 5})  # 422
        http.patch(one, content=b"x", headers={"content-type": "text/plain"})  # 415
        http.patch(f"{wallets}/{uuid.uuid4()}", json={"name": "ghost"})  # 404
        reader.patch(one, json={"name": "reader"})  # 403
        stranger.patch(one, json={"name": "stranger"})  # 401
        # Policies.
        policies = f"{one}/policies"
        http.get(policies)  # 404: never had policies
        http.patch(policies, json={})  # 400 no_updates_provided
        http.patch(policies, json={"colour": "blue"})  # 422
        http.patch(policies, content=b"x", headers={"content-type": "text/plain"})  # 415
        http.patch(f"{wallets}/{uuid.uuid4()}/policies", json={"ofac_compliant": True})
        reader.patch(policies, json={"ofac_compliant": True})  # 403
        anonymous.get(policies)
        stranger.get(policies)
        reader.get(f"/organizations/{uuid.uuid4()}/wallets/{wallet_id}/policies")  # 403
        http.patch(
            policies,
            json={
                "max_payment_size_sats": 1_000,
                "transactions_per_minute": 10,
                "send_volume_limit_sats": 50_000,
                "template_id": str(uuid.uuid4()),
                "ofac_compliant": True,
                "processing_fee": {"send_basis_points": 25, "receive_basis_points": 0},
            },
        )
        clock.now += 1.0
        http.get(policies)
        http.get(one)
        # Deletes.
        http.delete(f"{wallets}/{FUNDED}")  # 400 wallet_not_empty
        http.delete(f"{wallets}/{uuid.uuid4()}")  # 404
        reader.delete(one)  # 403
        stranger.delete(one)  # 401
        http.delete(one)
        clock.now += 1.0
        http.get(one)  # deleted, still 200
        http.get(wallets, params={"inactive": "true"})
        # Lines of credit.
        summaries = f"/organizations/{ORG}/lines_of_credit/summaries"
        http.get(summaries, params={"include_disabled": "true"})
        http.get(summaries, params={"network": "nowhere"})  # 400
        stranger.get(summaries)
        reader.get(f"/organizations/{uuid.uuid4()}/lines_of_credit/summaries")  # 403
        http.get(f"/organizations/{ORG}/lines_of_credit/{LINE}/summary")
        http.get(f"/organizations/{ORG}/lines_of_credit/{uuid.uuid4()}/summary")  # 404
        scoped.get(f"/organizations/{ORG}/lines_of_credit/{LINE_PROD}/summary")  # 403
        anonymous.get(f"/organizations/{ORG}/lines_of_credit/{LINE}/summary")
        stranger.get(f"/organizations/{ORG}/lines_of_credit/{LINE}/summary")
        # A 500 from the fault injector is in the contract's shape too.
        running.faults.add_rule("fail_before_commit", method="POST")
        http.post(wallets, json={**body, "id": str(uuid.uuid4())})
        running.faults.add_rule("fail_after_commit", method="DELETE")
        http.delete(f"{wallets}/{uuid.uuid4()}")  # refused before commit: real 404

    expected = {
        ("GET", "/organizations/{organization_id}/wallets", s) for s in (200, 400, 401, 403)
    }
    expected |= {
        ("POST", "/organizations/{organization_id}/wallets", s)
        for s in (202, 400, 401, 403, 413, 415, 422, 500)
    }
    one_t = "/organizations/{organization_id}/wallets/{wallet_id}"
    expected |= {("GET", one_t, s) for s in (200, 400, 404)}
    expected |= {("PATCH", one_t, s) for s in (202, 400, 401, 403, 404, 415, 422)}
    expected |= {("DELETE", one_t, s) for s in (202, 400, 401, 403, 404)}
    pol_t = one_t + "/policies"
    expected |= {("GET", pol_t, s) for s in (200, 400, 401, 403, 404)}
    expected |= {("PATCH", pol_t, s) for s in (202, 400, 403, 404, 415, 422)}
    loc = "/organizations/{organization_id}/lines_of_credit"
    expected |= {("GET", loc + "/summaries", s) for s in (200, 400, 401, 403)}
    expected |= {("GET", loc + "/{line_id}/summary", s) for s in (200, 400, 401, 403, 404)}
    missing = expected - checker.seen
    assert not missing, f"operations and statuses not exercised: {sorted(missing)}"


def test_checker_catches_a_response_outside_the_contract(contract: dict[str, Any]) -> None:
    checker = ContractChecker(contract)
    request = httpx.Request("GET", f"http://127.0.0.1/v1/organizations/{ORG}/wallets/{FUNDED}")
    wrong = httpx.Response(
        200,
        json={"id": FUNDED, "active": "yes"},
        headers={"x-request-id": "r"},
        request=request,
    )
    with pytest.raises(AssertionError, match="does not match the contract"):
        checker.check(wrong)
    undeclared = httpx.Response(
        409, json={"error": {}}, headers={"x-request-id": "r"}, request=request
    )
    with pytest.raises(AssertionError, match="declares"):
        checker.check(undeclared)
