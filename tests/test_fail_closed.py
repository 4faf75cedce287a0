"""Fail closed: a plan is never made from an incomplete read.

Every read the Voltage provider makes for a plan (the wallet listing of each configured
environment, the policies of managed wallets, the line-of-credit summaries) is broken in
turn while the rest of the API answers normally (respx in front of a real emulator,
passing every other request through). For each broken read, `plan` and `apply` must
exit 1 with a message naming the read, print no plan, write no plan file, send no
write, and leave the emulator's world exactly as it was.

The world is set up so that a plan from a partial read would be dangerous: the
configuration removes two wallets and changes a third's limit, and `apply` is run with
every flag that allows deletes, replacements and guard overrides.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import yaml
from click.testing import CliRunner, Result

from tests.conftest import TEST_KEY, config_doc, wallet
from voltage_iac.cli import cli
from voltage_iac.client import VoltageClient
from voltage_iac.emulator.seed import (
    DEMO_ORGANIZATION_ID,
    DEMO_PRODUCTION_ENVIRONMENT_ID,
    DEMO_SEED,
    DEMO_STAGING_ENVIRONMENT_ID,
)
from voltage_iac.emulator.server import EmbeddedEmulator
from voltage_iac.secret import Secret

ORG = DEMO_ORGANIZATION_ID
STAGING = DEMO_STAGING_ENVIRONMENT_ID
PRODUCTION = DEMO_PRODUCTION_ENVIRONMENT_ID

#: Every read-failure scenario run by this module and test_hostile_api.py (for the docs).
TRIED: list[str] = []

BEFORE = config_doc(
    {
        "pay": wallet("Payouts", policies={"max_payment_size_sats": 5000}),
        "ops": wallet("Operations"),
        "live": wallet("Live", environment="production", line_of_credit="prod"),
    }
)
# Dangerous if planned from a partial read: one replacement, two deletes, one create.
AFTER = config_doc(
    {
        "pay": wallet("Payouts", limit="2000 sat", policies={"max_payment_size_sats": 5000}),
        "fresh": wallet("Fresh"),
    }
)
DANGEROUS = ["--allow-delete", "--allow-replace", "--force", "--auto-approve"]


@dataclass
class World:
    """An emulator holding wallets made by a real apply, and the CLI pointed at it."""

    emulator: EmbeddedEmulator
    tmp: Path
    config: Path
    ids: dict[str, str]  # wallet key -> id
    real: dict[str, Any] = field(default_factory=dict)  # read name -> real JSON answer

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    def state(self) -> Any:
        answer = httpx.get(self.emulator.admin_url + "/state", timeout=10)
        answer.raise_for_status()
        state = answer.json()
        state.pop("now", None)  # the emulator's clock, not the world
        return state

    def run(self, *argv: str, env: dict[str, str] | None = None) -> Result:
        args = [argv[0], *argv[1:], "--api-url", self.base_url]
        merged = {"NO_COLOR": "1", "VOLTAGE_API_KEY": TEST_KEY, "VOLTAGE_API_URL": ""}
        merged.update(env or {})
        return CliRunner().invoke(cli, args, env=merged, catch_exceptions=False)

    def url(self, read: str) -> str:
        if read == "policies":
            return f"{self.base_url}/organizations/{ORG}/wallets/{self.ids['pay']}/policies"
        if read == "lines_of_credit":
            return f"{self.base_url}/organizations/{ORG}/lines_of_credit/summaries"
        return f"{self.base_url}/organizations/{ORG}/wallets"


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("fail-closed")
    with EmbeddedEmulator(
        tmp / "emulator.db", seed=DEMO_SEED, api_key=Secret(TEST_KEY), visibility_delay=0.02
    ) as emulator:
        config = tmp / "wallets.yaml"
        made = World(emulator, tmp, _write(config, BEFORE), {})
        result = made.run("apply", str(config), "--auto-approve")
        assert result.exit_code == 0, result.output
        http = httpx.Client(headers={"x-api-key": TEST_KEY}, timeout=10)
        try:
            for env, name in ((STAGING, "wallets_staging"), (PRODUCTION, "wallets_production")):
                answer = http.get(
                    made.url(name), params={"environment_id": env, "inactive": "true"}
                )
                made.real[name] = answer.json()
            for item in made.real["wallets_staging"] + made.real["wallets_production"]:
                key = (item.get("metadata") or {}).get("voltage-iac.key")
                if key:
                    made.ids[key] = item["id"]
            made.real["policies"] = http.get(made.url("policies")).json()
            made.real["lines_of_credit"] = http.get(made.url("lines_of_credit")).json()
        finally:
            http.close()
        assert sorted(made.ids) == ["live", "ops", "pay"]
        assert made.real["policies"]["policies"], "the pay wallet should have a policy"
        _write(config, AFTER)
        yield made


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries still happen (and are counted); only the waits between them are skipped."""
    waits: list[float] = []

    def pause(self: VoltageClient, seconds: float, operation: str, why: str) -> None:
        waits.append(seconds)

    monkeypatch.setattr(VoltageClient, "_pause", pause)
    return waits


# -- faults -----------------------------------------------------------------------------

Fault = Callable[[Any], httpx.Response]


def _error(status: int, kind: str, detail: str = "") -> Fault:
    return lambda real: httpx.Response(status, json={"error": {"type": kind, "detail": detail}})


def _text(status: int, body: str) -> Fault:
    return lambda real: httpx.Response(status, text=body)


def _json(mutate: Callable[[Any], Any]) -> Fault:
    return lambda real: json_response(mutate(copy.deepcopy(real)))


def json_response(data: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(data).encode(),
        headers={"content-type": "application/json"},
    )


def _rate_limited(real: Any) -> httpx.Response:
    return httpx.Response(
        429,
        headers={"Retry-After": "1", "x-retry-after-ms": "700"},
        json={"error": {"type": "rate_limited", "detail": "slow down"}},
    )


GENERIC: dict[str, tuple[Fault, str]] = {
    # name: (fault, words the error message must contain)
    "persistent-500": (_error(500, "internal_error", "boom"), "internal_error, HTTP 500"),
    "persistent-503-html": (_text(503, "<html>Service Unavailable</html>"), "HTTP 503"),
    "429-beyond-budget": (_rate_limited, "rate_limited, HTTP 429, 5 attempts"),
    "malformed-json": (_text(200, '[{"id": "4f0c'), "is not JSON"),
    "html-instead-of-json": (_text(200, "<html><body>Welcome</body></html>"), "is not JSON"),
    "empty-body": (_text(200, ""), "is not JSON"),
    "json-null": (_json(lambda real: None), "got null"),
}
WRONG_TYPE: dict[str, tuple[Fault, str]] = {
    "wallets": (_json(lambda real: {"wallets": real}), "expected a JSON array, got an object"),
    "policies": (_json(lambda real: [real]), "expected a JSON object, got an array"),
    "lines_of_credit": (_json(lambda real: {"data": real}), "expected a JSON array"),
}


def _drop(field_name: str, *, owned_only: bool = False) -> Callable[[Any], Any]:
    def mutate(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for item in items:
            if not owned_only or (item.get("metadata") or {}).get("voltage-iac.key"):
                item.pop(field_name, None)
                return items
        raise AssertionError("no item to break")

    return mutate


def _foreign(world: World, read: str) -> Callable[[Any], Any]:
    other = "wallets_production" if read == "wallets_staging" else "wallets_staging"
    return lambda items: [*items, copy.deepcopy(world.real[other][0])]


def _specific(world: World, read: str) -> dict[str, tuple[Fault, str]]:
    """Faults that only make sense for one kind of read."""
    if read.startswith("wallets"):
        return {
            "item-missing-network": (_json(_drop("network")), "'network' is missing"),
            "item-missing-active": (_json(_drop("active")), "'active' is missing"),
            "item-missing-id": (_json(_drop("id")), "'id' is missing"),
            "owned-item-missing-limit": (
                _json(_drop("limit", owned_only=True)),
                "'limit' is missing",
            ),
            "owned-item-missing-line-of-credit": (
                _json(_drop("line_of_credit_id", owned_only=True)),
                "'line_of_credit_id' is missing",
            ),
            "item-missing-balances": (_json(_drop("balances")), "'balances' is missing"),
            "item-not-an-object": (_json(lambda items: [*items, 7]), "not a JSON object"),
            "wallet-of-another-environment": (
                _json(_foreign(world, read)),
                "belongs to environment",
            ),
            "wallet-listed-twice": (
                _json(lambda items: [*items, copy.deepcopy(items[-1])]),
                "listed more than once",
            ),
        }
    if read == "policies":
        return {
            "policies-array-missing": (
                _json(lambda doc: {k: v for k, v in doc.items() if k != "policies"}),
                "expected an object with a policies array",
            ),
            "policy-entry-missing-data": (
                _json(lambda doc: {**doc, "policies": [{"type": "max_payment_size"}]}),
                "malformed policy entry",
            ),
            "policy-value-missing": (
                _json(lambda doc: {**doc, "policies": [{"type": "max_payment_size", "data": {}}]}),
                "'max_size_sats' is missing",
            ),
            "404-without-envelope": (_text(404, "Not Found"), "HTTP 404"),
        }
    return {
        "summary-missing-allocated-limit": (
            _json(
                lambda items: [
                    {k: v for k, v in i.items() if k != "allocated_limit"} for i in items
                ]
            ),
            "limit and allocated_limit are required",
        ),
        "summary-missing-network": (_json(_drop("network")), "'network' is missing"),
        "summary-not-an-object": (_json(lambda items: ["line"]), "not a JSON object"),
    }


READS = {
    # read: (what the message must name, query that selects it)
    "wallets_staging": (STAGING, {"environment_id": STAGING}),
    "wallets_production": (PRODUCTION, {"environment_id": PRODUCTION}),
    "policies": ("policies of wallet", None),
    "lines_of_credit": ("lines of credit", None),
}


def _cases() -> list[tuple[str, str]]:
    names = [*GENERIC, "wrong-json-type"]
    cases = [(read, name) for read in READS for name in names]
    specific = {
        "wallets_staging": [
            "item-missing-network",
            "item-missing-active",
            "item-missing-id",
            "owned-item-missing-limit",
            "owned-item-missing-line-of-credit",
            "item-missing-balances",
            "item-not-an-object",
            "wallet-of-another-environment",
            "wallet-listed-twice",
        ],
        "policies": [
            "policies-array-missing",
            "policy-entry-missing-data",
            "policy-value-missing",
            "404-without-envelope",
        ],
        "lines_of_credit": [
            "summary-missing-allocated-limit",
            "summary-missing-network",
            "summary-not-an-object",
        ],
    }
    specific["wallets_production"] = [
        "item-missing-network",
        "owned-item-missing-limit",
        "wallet-of-another-environment",
        "wallet-listed-twice",
    ]
    for read, names_for_read in specific.items():
        cases += [(read, name) for name in names_for_read]
    return cases


def fault_for(world: World, read: str, name: str) -> tuple[Fault, str]:
    if name in GENERIC:
        return GENERIC[name]
    if name == "wrong-json-type":
        return WRONG_TYPE["wallets" if read.startswith("wallets") else read]
    return _specific(world, read)[name]


@dataclass
class Outcome:
    result: Result
    writes: list[str]
    faulted_calls: int


def run_with_fault(
    world: World, read: str, respond: Callable[[], httpx.Response], *argv: str
) -> Outcome:
    """Run the CLI with one read answered by `respond`, everything else passed through."""
    _named, query = READS[read]
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as mock:
        kwargs: dict[str, Any] = {"url": world.url(read)}
        if query is not None:
            kwargs["params__contains"] = query
        faulted = mock.get(**kwargs).mock(side_effect=lambda request: respond())
        mock.route().pass_through()
        result = world.run(*argv)
        writes = [
            f"{call.request.method} {call.request.url.path}"
            for call in mock.calls
            if call.request.method != "GET"
        ]
    return Outcome(result, writes, faulted.call_count)


def assert_failed_closed(world: World, outcome: Outcome, before: Any, *names: str) -> None:
    result = outcome.result
    assert result.exit_code == 1, result.output
    assert outcome.faulted_calls >= 1, "the broken read was never made"
    assert "Traceback" not in result.output
    assert "Error: unexpected " not in result.stderr, result.stderr  # a bug's message
    assert result.stderr.startswith("Error: "), result.stderr
    for name in names:
        assert name in result.stderr, (name, result.stderr)
    assert "Plan:" not in result.stdout and "will perform" not in result.stdout, result.stdout
    assert outcome.writes == []
    assert world.state() == before


@pytest.mark.parametrize("command", ["plan", "apply"])
@pytest.mark.parametrize(("read", "fault"), _cases())
def test_a_broken_read_aborts_with_nothing_planned_or_changed(
    world: World, read: str, fault: str, command: str, no_backoff: list[float]
) -> None:
    respond, message = fault_for(world, read, fault)
    real = world.real[read]
    before = world.state()
    out = world.tmp / f"plan-{read}-{fault}.json"
    argv = [command, str(world.config)]
    argv += ["--out", str(out), "--format", "json"] if command == "plan" else DANGEROUS
    TRIED.append(f"{command}:{read}:{fault}")

    outcome = run_with_fault(world, read, lambda: respond(real), *argv)

    assert_failed_closed(world, outcome, before, READS[read][0], message)
    assert not out.exists()
    if command == "plan":
        assert outcome.result.stdout == ""
    if fault in ("persistent-500", "persistent-503-html", "429-beyond-budget"):
        assert outcome.faulted_calls == 5  # the read was retried up to the budget
        assert len(no_backoff) == 4


def test_the_same_commands_do_change_the_world_when_every_read_succeeds(world: World) -> None:
    """The control: without a fault, the plan the tests above refuse is dangerous."""
    plan = world.run("plan", str(world.config), "--format", "json")
    assert plan.exit_code == 0, plan.output
    doc = json.loads(plan.stdout)
    assert doc["summary"] == {"create": 1, "update": 0, "replace": 1, "delete": 2}
    # A failure that clears within the retry budget is not a failure.
    attempts = iter([_error(503, "internal_error")(None), _rate_limited(None)])
    outcome = run_with_fault(
        world,
        "wallets_staging",
        lambda: next(attempts, None) or json_response(world.real["wallets_staging"]),
        "plan",
        str(world.config),
        "--format",
        "json",
    )
    assert outcome.result.exit_code == 0, outcome.result.output
    assert json.loads(outcome.result.stdout)["summary"] == doc["summary"]
    assert outcome.faulted_calls == 3
