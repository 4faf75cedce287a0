"""Malformed and unexpected API answers: a clear error (exit 1), never a traceback or a plan.

Each case replaces one read's answer with something the contract does not allow (unknown
enum values, limits that are negative, fractional, text or past 64 bits, unknown policy
types, bodies past the client's cap, odd statuses, hostile error bodies) while the rest
of the API is a real emulator. `plan` and `apply` (with every permissive flag) must both
stop before planning, name what was wrong, and change nothing.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests import test_fail_closed as base
from tests.test_fail_closed import (
    DANGEROUS,
    TRIED,
    World,
    assert_failed_closed,
    json_response,
    run_with_fault,
)
from voltage_iac.client import MAX_LISTING_BYTES, MAX_RESPONSE_BYTES

# The same world and retry handling as test_fail_closed.py (fixtures shared by name).
world = base.world
no_backoff = base.no_backoff

Mutation = Callable[[Any], Any]


def _owned_wallet(items: list[dict[str, Any]]) -> dict[str, Any]:
    return next(i for i in items if (i.get("metadata") or {}).get("voltage-iac.key"))


def _wallet_field(name: str, value: Any) -> Mutation:
    def mutate(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        _owned_wallet(items)[name] = value
        return items

    return mutate


def _policy(kind: str, data: dict[str, Any]) -> Mutation:
    return lambda doc: {**doc, "policies": [{"type": kind, "data": data}]}


def _line_field(name: str, value: Any) -> Mutation:
    def mutate(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        items[0][name] = value
        return items

    return mutate


# (read, case name, mutation of the real JSON answer, words the message must contain)
SHAPES: list[tuple[str, str, Mutation, str]] = [
    ("wallets_staging", "network-lightning", _wallet_field("network", "lightning"), "'lightning'"),
    (
        "wallets_staging",
        "network-request-spelling",
        _wallet_field("network", "testnet3"),
        "unknown network",
    ),
    (
        "wallets_production",
        "network-lightning",
        _wallet_field("network", "lightning"),
        "unknown network",
    ),
    ("wallets_staging", "limit-negative", _wallet_field("limit", -5), "'limit' is not an unsigned"),
    (
        "wallets_staging",
        "limit-fractional",
        _wallet_field("limit", 1000.5),
        "'limit' is not an unsigned",
    ),
    (
        "wallets_staging",
        "limit-float-integral",
        _wallet_field("limit", 1e6),
        "'limit' is not an unsigned",
    ),
    (
        "wallets_staging",
        "limit-text",
        _wallet_field("limit", "1000000"),
        "'limit' is not an unsigned",
    ),
    (
        "wallets_staging",
        "limit-boolean",
        _wallet_field("limit", True),
        "'limit' is not an unsigned",
    ),
    (
        "wallets_staging",
        "limit-past-u64",
        _wallet_field("limit", 2**64),
        "'limit' is not an unsigned",
    ),
    (
        "wallets_production",
        "limit-negative",
        _wallet_field("limit", -1),
        "'limit' is not an unsigned",
    ),
    ("wallets_staging", "active-text", _wallet_field("active", "yes"), "'active'"),
    ("wallets_staging", "id-not-uuid", _wallet_field("id", "wallet-1"), "is not a UUID"),
    (
        "wallets_staging",
        "environment-not-uuid",
        _wallet_field("environment_id", "staging"),
        "is not a UUID",
    ),
    (
        "wallets_staging",
        "line-of-credit-not-uuid",
        _wallet_field("line_of_credit_id", 42),
        "is not a UUID",
    ),
    ("wallets_staging", "metadata-list", _wallet_field("metadata", ["a"]), "metadata is not"),
    (
        "wallets_staging",
        "metadata-number-value",
        _wallet_field("metadata", {"team": 7}),
        "metadata is not",
    ),
    ("wallets_staging", "name-null", _wallet_field("name", None), "'name'"),
    ("wallets_staging", "balances-object", _wallet_field("balances", {}), "'balances'"),
    (
        "policies",
        "unknown-policy-type",
        _policy("geo_fence", {"countries": ["XX"]}),
        "unknown policy type 'geo_fence'",
    ),
    ("policies", "policy-type-not-text", _policy(None, {}), "unknown policy type None"),  # type: ignore[arg-type]
    (
        "policies",
        "max-size-negative",
        _policy("max_payment_size", {"max_size_sats": -1}),
        "outside 1..",
    ),
    ("policies", "max-size-zero", _policy("max_payment_size", {"max_size_sats": 0}), "outside 1.."),
    (
        "policies",
        "max-size-fractional",
        _policy("max_payment_size", {"max_size_sats": 1.5}),
        "'max_size_sats'",
    ),
    (
        "policies",
        "max-size-text",
        _policy("max_payment_size", {"max_size_sats": "5000"}),
        "'max_size_sats'",
    ),
    (
        "policies",
        "velocity-negative",
        _policy("transaction_velocity", {"transactions_per_minute": -3}),
        "outside 1..",
    ),
    (
        "policies",
        "volume-past-u64",
        _policy("send_volume_limit", {"limit_sats": 2**64}),
        "outside 1..",
    ),
    (
        "policies",
        "fee-over-100-percent",
        _policy(
            "processing_fee", {"rates": {"send_basis_points": 20000, "receive_basis_points": 0}}
        ),
        "outside 0..10000",
    ),
    (
        "policies",
        "template-not-uuid",
        _policy("reflex_approval", {"template_id": "tpl"}),
        "is not a UUID",
    ),
    (
        "policies",
        "policy-twice",
        lambda doc: {**doc, "policies": [doc["policies"][0], copy.deepcopy(doc["policies"][0])]},
        "appears twice",
    ),
    (
        "lines_of_credit",
        "network-lightning",
        _line_field("network", "lightning"),
        "unknown network 'lightning'",
    ),
    ("lines_of_credit", "limit-negative", _line_field("limit", -1), "'limit' is not an unsigned"),
    (
        "lines_of_credit",
        "limit-fractional",
        _line_field("limit", 10.5),
        "'limit' is not an unsigned",
    ),
    (
        "lines_of_credit",
        "allocated-text",
        _line_field("allocated_limit", "lots"),
        "'allocated_limit'",
    ),
    ("lines_of_credit", "id-not-uuid", _line_field("id", "loc"), "is not a UUID"),
]


def _ids(cases: list[tuple[Any, ...]]) -> list[str]:
    return [f"{case[0]}-{case[1]}" for case in cases]


@pytest.mark.parametrize("command", ["plan", "apply"])
@pytest.mark.parametrize(("read", "name", "mutate", "message"), SHAPES, ids=_ids(SHAPES))
def test_an_answer_outside_the_contract_is_a_clear_error(
    world: World, read: str, name: str, mutate: Mutation, message: str, command: str
) -> None:
    answer = mutate(copy.deepcopy(world.real[read]))
    before = world.state()
    TRIED.append(f"{command}:{read}:{name}")
    outcome = run_with_fault(world, read, lambda: json_response(answer), *_argv(world, command))
    assert_failed_closed(world, outcome, before, message)


def _argv(world: World, command: str) -> list[str]:
    if command == "plan":
        return ["plan", str(world.config)]
    return ["apply", str(world.config), *DANGEROUS]


def _chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    yield b"["
    sent = 1
    while sent < total:
        piece = min(size, total - sent)
        yield b" " * piece
        sent += piece


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# (read, case name, answer factory, words the message must contain)
RAW: list[tuple[str, str, Callable[[], httpx.Response], str]] = [
    (
        "wallets_staging",
        "body-past-cap-declared",
        # a wallet listing has a cap of its own (an environment's listing is unpaginated)
        lambda: httpx.Response(200, content=b"[" + b" " * MAX_LISTING_BYTES + b"]"),
        f"larger than {MAX_LISTING_BYTES} bytes",
    ),
    (
        "lines_of_credit",
        "body-past-cap-streamed",
        lambda: httpx.Response(200, content=_chunks(MAX_RESPONSE_BYTES + 2)),
        f"larger than {MAX_RESPONSE_BYTES} bytes",
    ),
    (
        "policies",
        "error-body-past-cap",
        lambda: httpx.Response(500, content=b'{"error": "' + b"x" * (2 << 20) + b'"}'),
        "too large to show",
    ),
    (
        "wallets_staging",
        "deeply-nested-json",
        lambda: httpx.Response(200, content=_deep(200_000)),
        "is not JSON",
    ),
    (
        "wallets_staging",
        "not-utf8",
        lambda: httpx.Response(200, content=b"[\xff\xfe\xfd]"),
        "is not JSON",
    ),
    (
        "wallets_staging",
        "nan-limit",
        lambda: httpx.Response(200, content=b'[{"limit": NaN}]'),
        "'id'",
    ),
    (
        "wallets_production",
        "redirect",
        lambda: httpx.Response(302, headers={"location": "http://127.0.0.1:9/"}),
        "unexpected HTTP status 302",
    ),
    ("wallets_staging", "no-content", lambda: httpx.Response(204), "is not JSON"),
    (
        "lines_of_credit",
        "unknown-error-type",
        lambda: json_response({"error": {"type": "brand_new_error", "detail": "new"}}, 400),
        "brand_new_error",
    ),
    ("policies", "error-without-envelope", lambda: httpx.Response(400, text="nope"), "HTTP 400"),
    (
        "policies",
        "deeply-nested-error",
        lambda: httpx.Response(500, content=_deep(200_000)),
        "HTTP 500",
    ),
]


@pytest.mark.parametrize("command", ["plan", "apply"])
@pytest.mark.parametrize(("read", "name", "respond", "message"), RAW, ids=_ids(RAW))
def test_hostile_bodies_and_statuses_are_refused(
    world: World,
    read: str,
    name: str,
    respond: Callable[[], httpx.Response],
    message: str,
    command: str,
) -> None:
    before = world.state()
    TRIED.append(f"{command}:{read}:{name}")
    outcome = run_with_fault(world, read, respond, *_argv(world, command))
    assert_failed_closed(world, outcome, before, message)


def test_values_the_tool_does_not_manage_are_tolerated(world: World) -> None:
    """Unknown extra fields and odd balances are not errors: only managed fields are checked,
    so a harmless server change does not stop every plan."""
    answer = copy.deepcopy(world.real["wallets_staging"])
    for item in answer:
        item["brand_new_field"] = {"nested": [1, 2, 3]}
        item["balances"] = [{"currency": "eur", "weird": True}]
    outcome = run_with_fault(
        world,
        "wallets_staging",
        lambda: json_response(answer),
        "plan",
        str(world.config),
        "--format",
        "json",
    )
    assert outcome.result.exit_code == 0, outcome.result.output
    assert json.loads(outcome.result.stdout)["summary"]["replace"] == 1
