"""The wallet kind: Lightning wallets with a credit limit, metadata and policies.

A registered resource kind (see `voltage_iac.kinds.base`). Owns the wallet's desired and
live types and its pure rules: only `name` and `policies` change in place; environment,
network, line of credit, limit and metadata are fixed at creation, so changing them is a
replacement (a new wallet with the next generation's id, then the old one deleted). A
wallet that holds funds is never deleted or replaced: the plan blocks it (drain it
first), because the API refuses to delete a funded wallet and a half-done replacement
would leave two live wallets with two allocations on the line of credit.

Limits are integers in the line of credit's base unit (msats for BTC lines). Metadata on
the desired side is the user's own; ownership labels are added by the backend at
creation and stripped from live metadata before comparison.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from voltage_iac import identity
from voltage_iac.kinds.base import (
    DiffContext,
    Operation,
    ResourceKind,
    environment_change,
    planned_id,
    record_of,
)
from voltage_iac.model import (
    Guards,
    Ownership,
    SourceRef,
    frozen_map,
    network_response_name,
    same_network,
)
from voltage_iac.plan import Action, Change, FieldChange, Plan, Problem
from voltage_iac.units import format_limit


@dataclass(frozen=True)
class ProcessingFee:
    send_basis_points: int
    receive_basis_points: int

    def to_dict(self) -> dict[str, int]:
        return {
            "send_basis_points": self.send_basis_points,
            "receive_basis_points": self.receive_basis_points,
        }


POLICY_FIELDS = (
    "max_payment_size_sats",
    "transactions_per_minute",
    "send_volume_limit_sats",
    "template_id",
    "ofac_compliant",
    "processing_fee",
)


@dataclass(frozen=True)
class Policies:
    """A wallet's policies as the config states them; `None` means "no such policy".

    `ofac_compliant=False` and "no OFAC policy" are the same thing.
    """

    max_payment_size_sats: int | None = None
    transactions_per_minute: int | None = None
    send_volume_limit_sats: int | None = None
    template_id: str | None = None
    ofac_compliant: bool = False
    processing_fee: ProcessingFee | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every policy field, `None` where unset (stable order)."""
        return {
            "max_payment_size_sats": self.max_payment_size_sats,
            "transactions_per_minute": self.transactions_per_minute,
            "send_volume_limit_sats": self.send_volume_limit_sats,
            "template_id": self.template_id,
            "ofac_compliant": self.ofac_compliant,
            "processing_fee": self.processing_fee.to_dict() if self.processing_fee else None,
        }

    def update_body(self, before: Policies | None) -> dict[str, Any]:
        """The PATCH body that turns `before` into `self`: changed fields only,
        `null` to remove a policy. Empty when nothing differs."""
        old = (before or Policies()).to_dict()
        body: dict[str, Any] = {}
        for name, value in self.to_dict().items():
            if old[name] != value:
                if name == "ofac_compliant" and not value:
                    body[name] = None
                else:
                    body[name] = value
        return body


@dataclass(frozen=True, slots=True)
class DesiredWallet:
    """One wallet as the configuration wants it.

    Fields a backend does not have are `None` (the config loader refuses them for that
    backend). `policies=None` means the config does not manage policies for this wallet.
    """

    key: str
    name: str
    environment: str  # environment name in the config
    environment_id: str | None = None
    network: str | None = None  # request spelling
    line_of_credit: str | None = None  # line-of-credit name in the config
    line_of_credit_id: str | None = None
    limit: int | None = None
    metadata: Mapping[str, str] = field(default_factory=lambda: frozen_map({}))
    policies: Policies | None = None
    protect: bool = False
    pinned_id: str | None = None
    ignore: tuple[str, ...] = ()  # field patterns drift reports ignore (e.g. "metadata.*")
    source: SourceRef | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class LiveWallet:
    """One wallet as the backend reports it, reduced to the fields we manage.

    `owner` is filled in by the provider (from metadata labels, or however the backend
    records ownership); `metadata` is the user part only, labels removed.
    `policies` is `None` when they were not read; `protected` is what the backend
    recorded at creation (it outlives the wallet's entry in the configuration).
    """

    id: str
    name: str
    environment_id: str | None = None
    network: str | None = None  # response spelling
    line_of_credit_id: str | None = None
    limit: int | None = None
    metadata: Mapping[str, str] = field(default_factory=lambda: frozen_map({}))
    active: bool = True
    deleted_at: str | None = None
    deletion_failed_at: str | None = None
    owner: Ownership | None = None
    policies: Policies | None = None
    has_funds: bool = False
    protected: bool = False  # protection recorded on the wallet at creation


_FIXED_REASONS = {
    "environment": "the environment is fixed at creation",
    "network": "the network is fixed at creation",
    "line_of_credit": "the line of credit is fixed at creation",
    "limit": "the limit is fixed at creation",
    "metadata": "metadata is fixed at creation",
}


def _fixed(name: str) -> bool:
    return name.split(".", 1)[0] in _FIXED_REASONS


def limit_growth(action: Action, fields: Sequence[FieldChange]) -> float | None:
    """How many times a replacement grows the limit, or None.

    A limit raised from 0 (no credit) grows without bound: `math.inf`."""
    if action is not Action.REPLACE:
        return None
    change = next((f for f in fields if f.field == "limit"), None)
    if change is None or not isinstance(change.before, int) or not isinstance(change.after, int):
        return None
    if change.before < 0 or change.after <= change.before:
        return None
    if change.before == 0:
        return math.inf
    return change.after / change.before


def describe_factor(factor: float) -> str:
    """How a limit increase reads: `20x`, or `from 0` for a limit raised from no credit."""
    return "from 0" if math.isinf(factor) else f"{factor:g}x"


def policy_changes(before: Policies, after: Policies) -> list[FieldChange]:
    old, new = before.to_dict(), after.to_dict()
    return [
        FieldChange(f"policies.{name}", old[name], new[name])
        for name in POLICY_FIELDS
        if old[name] != new[name]
    ]


class WalletKind(ResourceKind):
    name = "wallet"
    section = "wallets"
    plural = "wallets"

    def new_id(self, ctx: DiffContext, want: Any, generation: int) -> str | None:
        return planned_id(ctx, want, generation, identity.wallet_id)

    def create_fields(self, ctx: DiffContext, want: Any) -> list[FieldChange]:
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
        return fields

    def compare(self, ctx: DiffContext, want: Any, current: Any) -> list[FieldChange]:
        out = environment_change(ctx, want, current)
        if want.network is not None and not same_network(want.network, current.network):
            out.append(
                FieldChange("network", current.network, network_response_name(want.network), True)
            )
        if (
            want.line_of_credit_id is not None
            and want.line_of_credit_id != current.line_of_credit_id
        ):
            out.append(
                FieldChange(
                    "line_of_credit", current.line_of_credit_id, want.line_of_credit_id, True
                )
            )
        if want.limit is not None and want.limit != current.limit:
            out.append(FieldChange("limit", current.limit, want.limit, True))
        if want.environment_id is not None:  # metadata exists only where environments do
            for k in sorted(set(want.metadata) | set(current.metadata)):
                before, after = current.metadata.get(k), want.metadata.get(k)
                if before != after:
                    out.append(FieldChange(f"metadata.{k}", before, after, True))
        if want.name != current.name:
            out.append(FieldChange("name", current.name, want.name))
        if want.policies is not None and current.policies is not None:
            out.extend(policy_changes(current.policies, want.policies))
        return out

    def replace_reasons(self, fields: Sequence[FieldChange]) -> tuple[str, ...]:
        return tuple(
            reason
            for name, reason in _FIXED_REASONS.items()
            if any(f.forces_replacement and f.field.split(".", 1)[0] == name for f in fields)
        )

    def delete_fields(self, current: Any) -> list[FieldChange]:
        fields = [FieldChange("name", current.name, None)]
        if current.limit is not None:
            fields.append(FieldChange("limit", current.limit, None))
        return fields

    def snapshot(self, current: Any) -> dict[str, Any]:
        return {
            **super().snapshot(current),
            "environment_id": current.environment_id,
            "network": current.network,
            "line_of_credit_id": current.line_of_credit_id,
            "limit": current.limit,
            "metadata": dict(current.metadata),
            "policies": current.policies.to_dict() if current.policies is not None else None,
            "deletion_failed_at": current.deletion_failed_at,
            "has_funds": current.has_funds,
            "protected": current.protected,
        }

    def mainnet(self, want: Any | None, current: Any | None) -> bool:
        return any(obj is not None and obj.network == "mainnet" for obj in (want, current))

    def has_funds(self, current: Any) -> bool:
        return bool(current.has_funds)

    def protected_live(self, current: Any) -> bool:
        return bool(current.protected)

    def guarded(
        self, action: Action, fields: Sequence[FieldChange], guards: Guards
    ) -> tuple[str, ...]:
        factor = limit_growth(action, fields)
        if factor is None or factor <= guards.limit_increase_factor:
            return ()
        return (
            f"limit would grow {describe_factor(factor)} (guard: "
            f"{guards.limit_increase_factor:g}x)",
        )

    def notes(self, action: Action, fields: Sequence[FieldChange]) -> tuple[str, ...]:
        factor = limit_growth(action, fields)
        if factor is None:
            return ()
        change = next(f for f in fields if f.field == "limit")
        return (
            f"limit grows {describe_factor(factor)} ({format_limit(change.before)} -> "
            f"{format_limit(change.after)})",
        )

    def problems(self, ctx: DiffContext, changes: Sequence[Change]) -> list[Problem]:
        return _capacity_problems(ctx, changes)

    def record(self, want: Any) -> dict[str, Any]:
        return record_of(
            want,
            {
                "network": want.network,
                "line_of_credit": want.line_of_credit,
                "line_of_credit_id": want.line_of_credit_id,
                "limit": want.limit,
                "metadata": dict(want.metadata),
                "policies": want.policies.to_dict() if want.policies is not None else None,
            },
        )

    def from_record(self, key: str, data: Any) -> DesiredWallet:
        policies = data["policies"]
        return DesiredWallet(
            key=key,
            name=data["name"],
            environment=data["environment"],
            environment_id=data["environment_id"],
            network=data["network"],
            line_of_credit=data["line_of_credit"],
            line_of_credit_id=data["line_of_credit_id"],
            limit=data["limit"],
            metadata=frozen_map(dict(data["metadata"])),
            policies=None if policies is None else _policies_from_record(policies),
            protect=data["protect"],
            pinned_id=data["pinned_id"],
            ignore=tuple(data["ignore"]),
        )

    def import_sections(
        self, desired: Any, live: Any, environment: str
    ) -> tuple[dict[str, Any], list[str]]:
        from voltage_iac.kinds.wallet_import import import_sections

        return import_sections(desired, live, environment)

    def operations(self, change: Change, plan: Plan) -> list[Operation]:
        """A create is followed by setting its policies; an update renames and sets
        policies as the changed fields need (each its own API call)."""
        want = change.desired
        manages_policies = want is not None and want.policies is not None
        if change.action is Action.UPDATE:
            names = [f.field for f in change.fields]
            out = []
            if "name" in names:
                out.append(self.operation(change, plan, "update", change.id, fields=["name"]))
            if manages_policies and any(n.startswith("policies.") for n in names):
                out.append(self.operation(change, plan, "set_policies", change.id))
            return out
        out = []
        for op in super().operations(change, plan):
            out.append(op)
            if op.verb == "create" and manages_policies and want.policies != Policies():
                # id None: the wallet that create made
                out.append(
                    dataclasses.replace(
                        self.operation(change, plan, "set_policies", None), live=None
                    )
                )
        return out


def _policies_from_record(data: Mapping[str, Any]) -> Policies:
    fee = data["processing_fee"]
    return Policies(
        max_payment_size_sats=data["max_payment_size_sats"],
        transactions_per_minute=data["transactions_per_minute"],
        send_volume_limit_sats=data["send_volume_limit_sats"],
        template_id=data["template_id"],
        ofac_compliant=data["ofac_compliant"],
        processing_fee=None
        if fee is None
        else ProcessingFee(fee["send_basis_points"], fee["receive_basis_points"]),
    )


def _capacity_problems(ctx: DiffContext, changes: Sequence[Change]) -> list[Problem]:
    """Lines of credit that cannot take what the plan allocates on them.

    A replacement holds both limits for a moment (the new wallet is created before the
    old one is deleted), so it needs the new limit available on top of the old one."""
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
        summary = ctx.live.lines_of_credit.get(loc)
        subject = f"line of credit {names[loc]}"
        if summary is None:
            problems.append(
                Problem(
                    subject,
                    f"line of credit {loc} was not found in the organization "
                    "(check lines_of_credit in the configuration)",
                )
            )
            continue
        if summary.disabled:
            problems.append(Problem(subject, f"line of credit {loc} is disabled"))
            continue
        for network in sorted(networks.get(loc, ())):
            if not same_network(network, summary.network):
                problems.append(
                    Problem(
                        subject,
                        f"wallets on {network} cannot use this line of credit, "
                        f"which is on {summary.network}",
                    )
                )
        if amount > summary.available:
            problems.append(
                Problem(
                    subject,
                    f"the plan allocates {format_limit(amount)} but only "
                    f"{format_limit(summary.available)} is available "
                    f"(limit {format_limit(summary.limit)}, allocated "
                    f"{format_limit(summary.allocated_limit)}); lower the wallet limits or "
                    "raise the line of credit",
                )
            )
    return problems


WALLET = WalletKind()
