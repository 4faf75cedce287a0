"""The diff: desired state + live state -> Plan. Pure and deterministic.

Imports only model, identity, units and plan. Called by the engine after a provider's
read, and by tests over literal inputs. No I/O, clock or randomness: the same inputs
always give the same plan, which is what makes plans reviewable and checksummable.

Rules:
- Desired and live wallets are paired by identity (`Ownership.key`, or a pinned id),
  never by content; only managed fields are compared, so balances and timestamps can
  never show up as changes.
- Only wallets owned by this stack are updated or deleted. Everything else in a managed
  environment is listed as unmanaged and left alone.
- A change to a field fixed at creation is a replacement: a new wallet with the next
  generation's id, then the old one deleted. Wallets left over by an interrupted
  replacement are planned for deletion (marked `superseded`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from voltage_iac import identity
from voltage_iac.model import (
    POLICY_FIELDS,
    DesiredState,
    DesiredWallet,
    LiveState,
    LiveWallet,
    Policies,
    network_response_name,
    same_network,
)
from voltage_iac.plan import (
    Action,
    CapacityProblem,
    FieldChange,
    Plan,
    UnmanagedWallet,
    WalletChange,
    canonical_json,
)
from voltage_iac.units import format_limit

_IMMUTABLE_REASONS = {
    "environment": "the environment is fixed at creation",
    "network": "the network is fixed at creation",
    "line_of_credit": "the line of credit is fixed at creation",
    "limit": "the limit is fixed at creation",
    "metadata": "metadata is fixed at creation",
}


def diff(desired: DesiredState, live: LiveState, *, targets: Sequence[str] | None = None) -> Plan:
    """Compare the configuration with the live wallets and return the plan."""
    env_names = {env.id: env.name for env in desired.environments.values()}

    owned: dict[str, list[LiveWallet]] = {}
    by_id = {w.id: w for w in live.wallets}
    pinned_ids = {w.pinned_id: w.key for w in desired.wallets.values() if w.pinned_id}
    for wallet in live.wallets:
        key = _owner_key(wallet, desired.stack, pinned_ids)
        if key is not None:
            owned.setdefault(key, []).append(wallet)

    changes: list[WalletChange] = []
    warnings: list[str] = []
    for key, want in desired.wallets.items():
        wallets = owned.get(key, [])
        changes.extend(_changes_for(desired, want, wallets, by_id, env_names, live, warnings))

    for key in sorted(set(owned) - set(desired.wallets)):
        for wallet in _active(owned[key]):
            changes.append(_delete(key, wallet, env_names, superseded=False))

    for wallet in live.wallets:
        if wallet.deletion_failed_at and _owner_key(wallet, desired.stack, pinned_ids):
            warnings.append(
                f"wallet {wallet.id} ({wallet.name}): deletion failed at "
                f"{wallet.deletion_failed_at}"
            )

    unmanaged = tuple(
        UnmanagedWallet(
            id=w.id,
            name=w.name,
            environment=env_names.get(w.environment_id or "", w.environment_id or "default"),
            owner_stack=w.owner.stack if w.owner else None,
        )
        for w in sorted(live.wallets, key=lambda w: (w.environment_id or "", w.name, w.id))
        if w.active and _owner_key(w, desired.stack, pinned_ids) is None
    )

    managed_counts: dict[str, int] = {}
    for key, wallets in owned.items():
        if _active(wallets) and key in desired.wallets:
            env = desired.wallets[key].environment
            managed_counts[env] = managed_counts.get(env, 0) + 1
    for change in changes:
        if change.action is Action.DELETE and not change.superseded:
            managed_counts[change.environment] = managed_counts.get(change.environment, 0) + 1

    if targets:
        wanted = set(targets)
        changes = [c for c in changes if c.key in wanted]

    changes.sort(key=lambda c: (c.environment, c.key, c.action is Action.DELETE, c.wallet_id or ""))
    owned_ids = sorted(w.id for ws in owned.values() for w in ws if w.active)
    return Plan(
        stack=desired.stack,
        organization_id=desired.organization_id,
        provider_kind=desired.provider_kind,
        config_digest=desired.digest,
        changes=tuple(changes),
        unmanaged=unmanaged,
        capacity_problems=tuple(_capacity_problems(desired, live, changes)),
        warnings=tuple(warnings),
        targets=tuple(sorted(set(targets))) if targets else (),
        owned_wallet_ids=tuple(owned_ids),
        managed_counts=dict(sorted(managed_counts.items())),
        guards=desired.guards,
    )


def _owner_key(wallet: LiveWallet, stack: str, pinned_ids: Mapping[str, str]) -> str | None:
    if wallet.id in pinned_ids:
        return pinned_ids[wallet.id]
    if wallet.owner is not None and wallet.owner.stack == stack:
        return wallet.owner.key
    return None


def _active(wallets: Iterable[LiveWallet]) -> list[LiveWallet]:
    return [w for w in wallets if w.active]


def _generation(wallet: LiveWallet) -> int:
    return wallet.owner.generation if wallet.owner else 0


def _changes_for(
    desired: DesiredState,
    want: DesiredWallet,
    wallets: list[LiveWallet],
    by_id: Mapping[str, LiveWallet],
    env_names: Mapping[str, str],
    live: LiveState,
    warnings: list[str],
) -> list[WalletChange]:
    next_generation = max((_generation(w) for w in wallets), default=-1) + 1
    active = _active(wallets)
    if want.pinned_id and want.pinned_id not in by_id:
        warnings.append(
            f"{want.key}: pinned wallet {want.pinned_id} was not found; a new wallet is planned"
        )
    if not active:
        return [_create(desired, want, next_generation, live)]

    # The current wallet: the pinned one, else the newest generation; older ones are
    # leftovers of an interrupted replacement.
    active.sort(key=lambda w: (w.id == want.pinned_id, _generation(w), w.id), reverse=True)
    current, leftovers = active[0], active[1:]
    out = [_delete(want.key, w, env_names, superseded=True) for w in leftovers]

    immutable = _immutable_changes(want, current, env_names, live.capabilities.immutable_fields)
    mutable = _mutable_changes(want, current)
    snapshot = live_snapshot(current)
    common: dict[str, Any] = {
        "key": want.key,
        "environment": want.environment,
        "name": want.name,
        "protected": want.protect,
        "mainnet": _is_mainnet(want.network) or _is_mainnet(current.network),
        "has_funds": current.has_funds,
        "live_snapshot": snapshot,
        "desired": want,
        "live": current,
        "wallet_id": current.id,
    }
    if immutable:
        reasons = tuple(
            _IMMUTABLE_REASONS[name]
            for name in _IMMUTABLE_REASONS
            if any(c.field == name or c.field.startswith(name + ".") for c in immutable)
        )
        out.append(
            WalletChange(
                action=Action.REPLACE,
                new_wallet_id=_new_id(desired, want, next_generation, live),
                generation=next_generation,
                fields=tuple(immutable + mutable),
                reasons=reasons,
                **common,
            )
        )
    elif mutable:
        out.append(WalletChange(action=Action.UPDATE, fields=tuple(mutable), **common))
    else:
        out.append(WalletChange(action=Action.NOOP, **common))
    return out


def _create(
    desired: DesiredState, want: DesiredWallet, generation: int, live: LiveState
) -> WalletChange:
    fields: list[FieldChange] = [FieldChange("name", None, want.name)]
    if want.environment_id is not None:
        fields.append(FieldChange("environment", None, want.environment))
    if want.network is not None:
        fields.append(FieldChange("network", None, want.network))
    if want.line_of_credit_id is not None:
        fields.append(FieldChange("line_of_credit", None, want.line_of_credit))
    if want.limit is not None:
        fields.append(FieldChange("limit", None, want.limit))
    for k, v in want.metadata.items():
        fields.append(FieldChange(f"metadata.{k}", None, v))
    if want.policies is not None:
        for k, v in want.policies.to_dict().items():
            if v not in (None, False):
                fields.append(FieldChange(f"policies.{k}", None, v))
    return WalletChange(
        key=want.key,
        action=Action.CREATE,
        environment=want.environment,
        name=want.name,
        new_wallet_id=_new_id(desired, want, generation, live),
        generation=generation,
        fields=tuple(fields),
        protected=want.protect,
        mainnet=_is_mainnet(want.network),
        desired=want,
    )


def _delete(
    key: str, wallet: LiveWallet, env_names: Mapping[str, str], *, superseded: bool
) -> WalletChange:
    fields = [FieldChange("name", wallet.name, None)]
    if wallet.limit is not None:
        fields.append(FieldChange("limit", wallet.limit, None))
    return WalletChange(
        key=key,
        action=Action.DELETE,
        environment=env_names.get(wallet.environment_id or "", wallet.environment_id or "default"),
        name=wallet.name,
        wallet_id=wallet.id,
        fields=tuple(fields),
        superseded=superseded,
        mainnet=_is_mainnet(wallet.network),
        has_funds=wallet.has_funds,
        reasons=(
            ("left over by an interrupted replacement",)
            if superseded
            else ("no longer in the configuration",)
        ),
        live_snapshot=live_snapshot(wallet),
        live=wallet,
    )


def _new_id(
    desired: DesiredState, want: DesiredWallet, generation: int, live: LiveState
) -> str | None:
    if not live.capabilities.client_chosen_ids or want.environment_id is None:
        return None
    return identity.wallet_id(
        desired.organization_id, want.environment_id, desired.stack, want.key, generation
    )


def _immutable_changes(
    want: DesiredWallet,
    current: LiveWallet,
    env_names: Mapping[str, str],
    immutable_fields: Sequence[str],
) -> list[FieldChange]:
    out: list[FieldChange] = []
    if (
        "environment" in immutable_fields
        and want.environment_id is not None
        and want.environment_id != current.environment_id
    ):
        before = env_names.get(current.environment_id or "", current.environment_id)
        out.append(FieldChange("environment", before, want.environment))
    if (
        "network" in immutable_fields
        and want.network is not None
        and not same_network(want.network, current.network)
    ):
        out.append(FieldChange("network", current.network, network_response_name(want.network)))
    if (
        "line_of_credit" in immutable_fields
        and want.line_of_credit_id is not None
        and want.line_of_credit_id != current.line_of_credit_id
    ):
        out.append(FieldChange("line_of_credit", current.line_of_credit_id, want.line_of_credit_id))
    if "limit" in immutable_fields and want.limit is not None and want.limit != current.limit:
        out.append(FieldChange("limit", current.limit, want.limit))
    if "metadata" in immutable_fields:
        for k in sorted(set(want.metadata) | set(current.metadata)):
            before, after = current.metadata.get(k), want.metadata.get(k)
            if before != after:
                out.append(FieldChange(f"metadata.{k}", before, after))
    return out


def _mutable_changes(want: DesiredWallet, current: LiveWallet) -> list[FieldChange]:
    out: list[FieldChange] = []
    if want.name != current.name:
        out.append(FieldChange("name", current.name, want.name))
    if want.policies is not None and current.policies is not None:
        out.extend(policy_changes(current.policies, want.policies))
    return out


def policy_changes(before: Policies, after: Policies) -> list[FieldChange]:
    old, new = before.to_dict(), after.to_dict()
    return [
        FieldChange(f"policies.{name}", old[name], new[name])
        for name in POLICY_FIELDS
        if old[name] != new[name]
    ]


def _is_mainnet(network: str | None) -> bool:
    return network == "mainnet"


def live_snapshot(wallet: LiveWallet) -> dict[str, Any]:
    """The managed fields of a live wallet, as planned against (for stale-plan checks)."""
    return {
        "id": wallet.id,
        "name": wallet.name,
        "active": wallet.active,
        "environment_id": wallet.environment_id,
        "network": wallet.network,
        "line_of_credit_id": wallet.line_of_credit_id,
        "limit": wallet.limit,
        "metadata": dict(wallet.metadata),
        "policies": wallet.policies.to_dict() if wallet.policies is not None else None,
        "deletion_failed_at": wallet.deletion_failed_at,
    }


def fingerprint(snapshot: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(dict(snapshot))).hexdigest()[:16]


def _capacity_problems(
    desired: DesiredState, live: LiveState, changes: Sequence[WalletChange]
) -> list[CapacityProblem]:
    needed: dict[str, int] = {}
    names: dict[str, str] = {}
    networks: dict[str, set[str]] = {}
    for change in changes:
        want = change.desired
        if change.action not in (Action.CREATE, Action.REPLACE) or want is None:
            continue
        if want.line_of_credit_id is None or want.limit is None:
            continue
        loc = want.line_of_credit_id
        needed[loc] = needed.get(loc, 0) + want.limit
        names[loc] = want.line_of_credit or loc
        if want.network:
            networks.setdefault(loc, set()).add(want.network)
    problems = []
    for loc, amount in sorted(needed.items()):
        summary = live.lines_of_credit.get(loc)
        name = names[loc]
        if summary is None:
            problems.append(
                CapacityProblem(
                    name,
                    loc,
                    f"line of credit {loc} was not found in the organization "
                    "(check lines_of_credit in the configuration)",
                )
            )
            continue
        if summary.disabled:
            problems.append(CapacityProblem(name, loc, f"line of credit {loc} is disabled"))
            continue
        for network in sorted(networks.get(loc, ())):
            if not same_network(network, summary.network):
                problems.append(
                    CapacityProblem(
                        name,
                        loc,
                        f"wallets on {network} cannot use this line of credit, "
                        f"which is on {summary.network}",
                    )
                )
        if amount > summary.available:
            problems.append(
                CapacityProblem(
                    name,
                    loc,
                    f"the plan allocates {format_limit(amount)} but only "
                    f"{format_limit(summary.available)} is available "
                    f"(limit {format_limit(summary.limit)}, allocated "
                    f"{format_limit(summary.allocated_limit)}); lower the wallet limits or "
                    "raise the line of credit",
                )
            )
    return problems
