"""Small builders of model objects for the pure-core tests (literal inputs, no I/O)."""

from __future__ import annotations

from typing import Any

from voltage_iac import identity
from voltage_iac.kinds.wallet import DesiredWallet, LiveWallet, Policies
from voltage_iac.model import (
    DesiredState,
    Environment,
    Guards,
    LineOfCredit,
    LineOfCreditSummary,
    LiveState,
    Ownership,
    frozen_map,
)

ORG = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
ENV = "5a0c7e9e-2b1d-4f3a-9c8e-1d2e3f4a5b6c"
ENV_PROD = "7b1d8f0f-3c2e-4a4b-8d9f-2e3f4a5b6c7d"
LOC = "9c2e0a1a-4d3f-4b5c-9eaf-3f4a5b6c7d8e"
LOC_PROD = "ad3f1b2b-5e4a-4c6d-8fb0-4a5b6c7d8e9f"
STACK = "acme"


def want(key: str, **overrides: Any) -> DesiredWallet:
    env = overrides.pop("env", "staging")
    values: dict[str, Any] = {
        "key": key,
        "name": f"Wallet {key}",
        "environment": env,
        "environment_id": ENV if env == "staging" else ENV_PROD,
        "network": "mutinynet" if env == "staging" else "mainnet",
        "line_of_credit": "main" if env == "staging" else "prod",
        "line_of_credit_id": LOC if env == "staging" else LOC_PROD,
        "limit": 1000,
        "metadata": frozen_map({}),
    }
    if "metadata" in overrides:
        overrides["metadata"] = frozen_map(overrides["metadata"])
    values.update(overrides)
    return DesiredWallet(**values)


def desired(*wallets: DesiredWallet, guards: Guards | None = None) -> DesiredState:
    return DesiredState(
        stack=STACK,
        organization_id=ORG,
        environments=frozen_map(
            {
                "staging": Environment("staging", ENV, "mutinynet"),
                "production": Environment("production", ENV_PROD, "mainnet"),
            }
        ),
        lines_of_credit=frozen_map(
            {"main": LineOfCredit("main", LOC), "prod": LineOfCredit("prod", LOC_PROD)}
        ),
        resources=frozen_map({"wallet": frozen_map({w.key: w for w in wallets})}),
        guards=guards or Guards(),
        digest="d" * 64,
    )


def live_of(
    w: DesiredWallet,
    *,
    generation: int = 0,
    stack: str = STACK,
    policies: Policies | None = None,
    **overrides: Any,
) -> LiveWallet:
    """The live wallet that a correct apply of `w` would have produced."""
    values: dict[str, Any] = {
        "id": identity.wallet_id(ORG, w.environment_id or ENV, stack, w.key, generation),
        "name": w.name,
        "environment_id": w.environment_id,
        "network": "testnet" if w.network == "testnet3" else w.network,
        "line_of_credit_id": w.line_of_credit_id,
        "limit": w.limit,
        "metadata": frozen_map(dict(w.metadata)),
        "owner": Ownership(stack, w.key, generation),
        "policies": policies,
    }
    if "metadata" in overrides:
        overrides["metadata"] = frozen_map(overrides["metadata"])
    values.update(overrides)
    return LiveWallet(**values)


def live(*wallets: LiveWallet, available: int = 10**12) -> LiveState:
    return LiveState(
        resources=frozen_map({"wallet": tuple(wallets)}),
        lines_of_credit=frozen_map(
            {
                LOC: LineOfCreditSummary(LOC, ENV, "mutinynet", available, 0),
                LOC_PROD: LineOfCreditSummary(LOC_PROD, ENV_PROD, "mainnet", available, 0),
            }
        ),
        environments_read=("production", "staging"),
    )
