"""Seed worlds for the emulator: the demo world of the quick start, and seed files.

Sits before the emulator's store: `store.Store.load_seed` validates a seed with
`validate_seed` and writes it; the embedded server (`server.py`) seeds `DEMO_SEED` into
a new database; the command line (`voltage-iac emulator seed FILE`) reads a file with
`load_seed_file`. Pure data and validation, no I/O apart from reading a seed file.

A seed (YAML or JSON) names one organization and what exists in it, as the dashboard
would have set it up: API keys, environments, lines of credit and pre-existing wallets.
See docs/emulator.md for the format.
"""

from __future__ import annotations

import copy
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from voltage_iac.emulator.errors import EmulatorError
from voltage_iac.emulator.networks import REQUEST_NETWORKS

DEMO_ORGANIZATION_ID = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
DEMO_STAGING_ENVIRONMENT_ID = "5a0c7e9e-2b1d-4f3a-9c8e-1d2e3f4a5b6c"
DEMO_PRODUCTION_ENVIRONMENT_ID = "7b1d8f0f-3c2e-4a4b-8d9f-2e3f4a5b6c7d"
DEMO_STAGING_LINE_ID = "9c2e0a1a-4d3f-4b5c-9eaf-3f4a5b6c7d8e"
DEMO_PRODUCTION_LINE_ID = "ad3f1b2b-5e4a-4c6d-8fb0-4a5b6c7d8e9f"
DEMO_LEGACY_WALLET_ID = "be4a2c3c-6f5b-4d7e-9ac1-5b6c7d8e9fa0"

# The demo world of the quick start. Ids are fixed so documentation and examples can
# name them. It has no API keys: whoever serves it registers its own key.
DEMO_SEED: dict[str, Any] = {
    "organization_id": DEMO_ORGANIZATION_ID,
    "api_keys": [],
    "environments": [
        {"id": DEMO_STAGING_ENVIRONMENT_ID, "name": "staging", "network": "mutinynet"},
        {"id": DEMO_PRODUCTION_ENVIRONMENT_ID, "name": "production", "network": "mainnet"},
    ],
    "lines_of_credit": [
        {
            "id": DEMO_STAGING_LINE_ID,
            "environment_id": DEMO_STAGING_ENVIRONMENT_ID,
            "network": "mutinynet",
            "limit": 1_000_000_000_000,  # 10 BTC in msats
            "currency": "btc",
        },
        {
            "id": DEMO_PRODUCTION_LINE_ID,
            "environment_id": DEMO_PRODUCTION_ENVIRONMENT_ID,
            "network": "mainnet",
            "limit": 100_000_000_000,  # 1 BTC in msats
            "currency": "btc",
        },
    ],
    "wallets": [
        {
            "id": DEMO_LEGACY_WALLET_ID,
            "environment_id": DEMO_STAGING_ENVIRONMENT_ID,
            "line_of_credit_id": DEMO_STAGING_LINE_ID,
            "name": "Legacy treasury",
            "limit": 0,
            "network": "mutinynet",
            "metadata": {"team": "finance"},
            "balance_msats": 2_500_000,
        }
    ],
}

U64_MAX = 2**64 - 1
SEND_EVENTS = ("succeeded", "failed")
RECEIVE_EVENTS = (
    "generated",
    "detected",
    "refreshed",
    "expired",
    "succeeded",
    "completed",
    "failed",
)
TEST_EVENTS = ("created",)
WEBHOOK_EVENTS: dict[str, tuple[str, ...]] = {
    "send": SEND_EVENTS,
    "receive": RECEIVE_EVENTS,
    "test": TEST_EVENTS,
}
ACCESS_LEVELS = ("read", "write")
CURRENCIES = ("btc",)


class SeedError(EmulatorError):
    """A seed document is invalid: carries every problem found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = list(problems)
        body = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid emulator seed {source}:\n{body}")


def demo_seed() -> dict[str, Any]:
    """A fresh deep copy of `DEMO_SEED` (callers may change it freely)."""
    return copy.deepcopy(DEMO_SEED)


def load_seed_file(path: str | Path) -> dict[str, Any]:
    """Read and validate a seed file (YAML or JSON; JSON is valid YAML)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise EmulatorError(f"cannot read seed file {file}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SeedError(str(file), [f"not valid YAML or JSON: {exc}"]) from None
    return validate_seed(data, source=str(file))


def webhook_events(value: object) -> tuple[tuple[str, str], ...] | None:
    """The contract's `EventTypes` list (`[{"send": "succeeded"}, ...]`) as (kind, event)
    pairs, duplicates dropped; None when it is not a non-empty list of such objects."""
    if not isinstance(value, list) or not value:
        return None
    pairs: list[tuple[str, str]] = []
    for item in value:
        if not isinstance(item, Mapping) or len(item) != 1:
            return None
        ((kind, event),) = item.items()
        if kind not in WEBHOOK_EVENTS or event not in WEBHOOK_EVENTS[kind]:
            return None
        if (kind, event) not in pairs:
            pairs.append((kind, event))
    return tuple(pairs)


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_int(value: object, low: int = 0, high: int = U64_MAX) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _items(data: Mapping[str, Any], key: str, problems: list[str]) -> list[Mapping[str, Any]]:
    value = data.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{key}: must be a list")
        return []
    good: list[Mapping[str, Any]] = []
    for index, item in enumerate(value):
        if isinstance(item, Mapping):
            good.append(item)
        else:
            problems.append(f"{key}[{index}]: must be a mapping")
    return good


def _check_fields(
    where: str,
    item: Mapping[str, Any],
    required: tuple[str, ...],
    optional: tuple[str, ...],
    problems: list[str],
) -> None:
    for name in required:
        if name not in item:
            problems.append(f"{where}: missing '{name}'")
    unknown = sorted(set(item) - set(required) - set(optional))
    for name in unknown:
        problems.append(f"{where}: unknown field '{name}'")


def _entries(
    data: Mapping[str, Any],
    key: str,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    problems: list[str],
) -> Iterator[tuple[str, Mapping[str, Any], str]]:
    """(where, entry, canonical id) of each entry of the list `key` that has a UUID id,
    its fields checked; a problem for every other."""
    for i, item in enumerate(_items(data, key, problems)):
        where = f"{key}[{i}]"
        _check_fields(where, item, required, optional, problems)
        if not _is_uuid(item.get("id")):
            problems.append(f"{where}.id: must be a UUID")
            continue
        yield where, item, str(uuid.UUID(item["id"]))


def _reference(
    where: str,
    item: Mapping[str, Any],
    name: str,
    known: set[str],
    what: str,
    problems: list[str],
) -> Any:
    """The id in `item[name]` (canonical when a UUID); a problem unless it names one of
    `known` (`what` of this seed)."""
    value = item.get(name)
    if not _is_uuid(value) or str(uuid.UUID(value)) not in known:
        problems.append(f"{where}.{name}: must name {what} of this seed")
    return str(uuid.UUID(value)) if _is_uuid(value) else value


def validate_seed(data: object, *, source: str = "(document)") -> dict[str, Any]:
    """Check a seed document and return it normalised (ids lower-case, defaults filled).

    Raises `SeedError` listing every problem at once.
    """
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise SeedError(source, ["the seed must be a mapping with an organization_id"])
    known = {
        "organization_id",
        "api_keys",
        "environments",
        "lines_of_credit",
        "wallets",
        "webhooks",
    }
    for name in sorted(set(data) - known):
        problems.append(f"unknown top-level field '{name}'")
    org = data.get("organization_id")
    if not _is_uuid(org):
        problems.append("organization_id: must be a UUID")

    environments: list[dict[str, Any]] = []
    env_ids: set[str] = set()
    for where, env, env_id in _entries(
        data, "environments", ("id", "network"), ("name",), problems
    ):
        if env.get("network") not in REQUEST_NETWORKS:
            problems.append(f"{where}.network: must be one of {', '.join(REQUEST_NETWORKS)}")
        name = env.get("name")
        if name is not None and not isinstance(name, str):
            problems.append(f"{where}.name: must be a string")
        env_ids.add(env_id)
        environments.append(
            {"id": env_id, "name": name, "network": env.get("network")},
        )

    keys: list[dict[str, Any]] = []
    for i, key in enumerate(_items(data, "api_keys", problems)):
        where = f"api_keys[{i}]"
        _check_fields(where, key, ("key", "access"), ("environment_id",), problems)
        if not isinstance(key.get("key"), str) or not key.get("key"):
            problems.append(f"{where}.key: must be a non-empty string")
            continue
        if key.get("access") not in ACCESS_LEVELS:
            problems.append(f"{where}.access: must be read or write")
        key_env = key.get("environment_id")
        if key_env is not None:
            if not _is_uuid(key_env):
                problems.append(f"{where}.environment_id: must be a UUID")
                key_env = None
            else:
                key_env = str(uuid.UUID(key_env))
                if key_env not in env_ids:
                    problems.append(f"{where}.environment_id: not an environment of this seed")
        keys.append({"key": key["key"], "access": key.get("access"), "environment_id": key_env})

    lines: list[dict[str, Any]] = []
    line_ids: set[str] = set()
    for where, line, line_id in _entries(
        data,
        "lines_of_credit",
        ("id", "environment_id", "network", "limit"),
        ("currency", "disabled"),
        problems,
    ):
        line_env = _reference(where, line, "environment_id", env_ids, "an environment", problems)
        if line.get("network") not in REQUEST_NETWORKS:
            problems.append(f"{where}.network: must be one of {', '.join(REQUEST_NETWORKS)}")
        if not _is_int(line.get("limit")):
            problems.append(f"{where}.limit: must be an integer >= 0 (msats for btc)")
        currency = line.get("currency", "btc")
        if currency not in CURRENCIES:
            problems.append(f"{where}.currency: must be btc (the emulator has BTC lines only)")
        disabled = line.get("disabled", False)
        if not isinstance(disabled, bool):
            problems.append(f"{where}.disabled: must be true or false")
        line_ids.add(line_id)
        lines.append(
            {
                "id": line_id,
                "environment_id": line_env,
                "network": line.get("network"),
                "limit": line.get("limit"),
                "currency": currency,
                "disabled": disabled,
            }
        )

    wallets: list[dict[str, Any]] = []
    for where, wallet, wallet_id in _entries(
        data,
        "wallets",
        ("id", "environment_id", "line_of_credit_id", "name", "limit", "network"),
        ("metadata", "balance_msats", "active"),
        problems,
    ):
        wallet_env = _reference(
            where, wallet, "environment_id", env_ids, "an environment", problems
        )
        wallet_line = _reference(
            where, wallet, "line_of_credit_id", line_ids, "a line of credit", problems
        )
        name = wallet.get("name")
        if not isinstance(name, str) or not 3 <= len(name) <= 256:
            problems.append(f"{where}.name: must be a string of 3 to 256 characters")
        if not _is_int(wallet.get("limit")):
            problems.append(f"{where}.limit: must be an integer >= 0")
        if wallet.get("network") not in REQUEST_NETWORKS:
            problems.append(f"{where}.network: must be one of {', '.join(REQUEST_NETWORKS)}")
        metadata = wallet.get("metadata") or {}
        if not isinstance(metadata, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            problems.append(f"{where}.metadata: must map strings to strings")
            metadata = {}
        balance = wallet.get("balance_msats", 0)
        if not _is_int(balance, 0, 2**63 - 1):
            problems.append(f"{where}.balance_msats: must be an integer >= 0")
        active = wallet.get("active", True)
        if not isinstance(active, bool):
            problems.append(f"{where}.active: must be true or false")
        wallets.append(
            {
                "id": wallet_id,
                "environment_id": wallet_env,
                "line_of_credit_id": wallet_line,
                "name": name,
                "limit": wallet.get("limit"),
                "network": wallet.get("network"),
                "metadata": dict(metadata),
                "balance_msats": balance,
                "active": active,
            }
        )

    webhooks: list[dict[str, Any]] = []
    for where, hook, hook_id in _entries(
        data,
        "webhooks",
        ("id", "environment_id", "url", "name", "events"),
        ("status", "shared_secret"),
        problems,
    ):
        hook_env = _reference(where, hook, "environment_id", env_ids, "an environment", problems)
        for name in ("url", "name"):
            if not isinstance(hook.get(name), str) or not hook.get(name):
                problems.append(f"{where}.{name}: must be a non-empty string")
        events = webhook_events(hook.get("events"))
        if events is None:
            problems.append(
                f"{where}.events: must be a non-empty list like [{{send: succeeded}}] "
                "(send: succeeded|failed; receive: " + "|".join(RECEIVE_EVENTS) + "; test: created)"
            )
            events = ()
        status = hook.get("status", "active")
        if status not in ("active", "stopped", "deleted"):
            problems.append(f"{where}.status: must be active, stopped or deleted")
        secret = hook.get("shared_secret")
        if secret is not None and (not isinstance(secret, str) or not secret):
            problems.append(f"{where}.shared_secret: must be a non-empty string")
        webhooks.append(
            {
                "id": hook_id,
                "environment_id": hook_env,
                "url": hook.get("url"),
                "name": hook.get("name"),
                "events": events,
                "status": status,
                "shared_secret": secret,
            }
        )

    for kind, items in (
        ("environments", environments),
        ("lines_of_credit", lines),
        ("webhooks", webhooks),
        ("wallets", wallets),
    ):
        counts = Counter(item["id"] for item in items)
        for dup in sorted(x for x, n in counts.items() if n > 1):
            problems.append(f"{kind}: id {dup} appears more than once")

    if problems:
        raise SeedError(source, problems)
    return {
        "organization_id": str(uuid.UUID(str(org))),
        "api_keys": keys,
        "environments": environments,
        "lines_of_credit": lines,
        "wallets": wallets,
        "webhooks": webhooks,
    }
