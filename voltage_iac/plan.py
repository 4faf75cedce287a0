"""The plan: typed, ordered, serialisable changes, and the safety policy that guards them.

Pure: imports only errors, model and units. `diff.diff()` builds a `Plan`; renderers
read `Plan.to_dict()` (the JSON plan, the checksum and the Markdown all come from it);
the apply engine executes its changes after `Plan.check_safety()` passed.
No clock, randomness or I/O here: the same inputs always give the same plan and checksum.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from voltage_iac.errors import SafetyViolation
from voltage_iac.model import DesiredWallet, Guards, LiveWallet, Policies

PLAN_FORMAT_VERSION = 1


class Action(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    NOOP = "no-op"


@dataclass(frozen=True)
class FieldChange:
    """One field's before and after (None where absent). Values are JSON-ready."""

    field: str
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class WalletChange:
    """What the plan does to one wallet."""

    key: str
    action: Action
    environment: str
    name: str
    wallet_id: str | None = None  # the live wallet acted on (update/replace/delete)
    new_wallet_id: str | None = None  # the wallet to create (create/replace), if ids are ours
    generation: int | None = None  # generation of the wallet to create
    fields: tuple[FieldChange, ...] = ()
    reasons: tuple[str, ...] = ()
    protected: bool = False
    superseded: bool = False  # delete of a wallet left over by an interrupted replacement
    mainnet: bool = False
    has_funds: bool = False
    live_snapshot: Mapping[str, Any] | None = None  # managed live fields planned against
    desired: DesiredWallet | None = field(default=None, compare=False, repr=False)
    live: LiveWallet | None = field(default=None, compare=False, repr=False)

    @property
    def is_change(self) -> bool:
        return self.action is not Action.NOOP

    def field(self, name: str) -> FieldChange | None:
        for change in self.fields:
            if change.field == name:
                return change
        return None

    def limit_increase_factor(self) -> float | None:
        """How many times the limit grows (replace only), or None.

        A limit raised from 0 (no credit) grows without bound: `math.inf`."""
        if self.action is not Action.REPLACE:
            return None
        change = self.field("limit")
        if (
            change is None
            or not isinstance(change.before, int)
            or not isinstance(change.after, int)
        ):
            return None
        if change.before < 0 or change.after <= change.before:
            return None
        if change.before == 0:
            return math.inf
        return change.after / change.before

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "action": self.action.value,
            "environment": self.environment,
            "name": self.name,
            "wallet_id": self.wallet_id,
            "new_wallet_id": self.new_wallet_id,
            "generation": self.generation,
            "protected": self.protected,
            "superseded": self.superseded,
            "mainnet": self.mainnet,
            "has_funds": self.has_funds,
            "reasons": list(self.reasons),
            "changes": [c.to_dict() for c in self.fields],
            "live": dict(self.live_snapshot) if self.live_snapshot is not None else None,
        }
        return data


@dataclass(frozen=True)
class UnmanagedWallet:
    """A live wallet in a managed environment that this stack does not own."""

    id: str
    name: str
    environment: str
    owner_stack: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "environment": self.environment,
            "owner_stack": self.owner_stack,
        }


@dataclass(frozen=True)
class CapacityProblem:
    """A line of credit that cannot take what the plan would allocate on it."""

    line_of_credit: str
    line_of_credit_id: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "line_of_credit": self.line_of_credit,
            "line_of_credit_id": self.line_of_credit_id,
            "message": self.message,
        }


@dataclass(frozen=True)
class Plan:
    stack: str
    organization_id: str
    provider_kind: str
    config_digest: str
    changes: tuple[WalletChange, ...] = ()
    unmanaged: tuple[UnmanagedWallet, ...] = ()
    capacity_problems: tuple[CapacityProblem, ...] = ()
    warnings: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    owned_wallet_ids: tuple[str, ...] = ()  # every owned live wallet seen (active)
    managed_counts: Mapping[str, int] = field(default_factory=dict)  # per environment
    guards: Guards = field(default_factory=Guards)
    force: bool = False  # made with --force: the guards' verdicts are overridden, and recorded

    @property
    def touches_mainnet(self) -> bool:
        """True when any change acts on a mainnet wallet (real money)."""
        return any(c.mainnet for c in self.actionable)

    def overrides(self) -> list[str]:
        """The guards that --force overrides in this plan (empty unless made with force)."""
        if not self.force:
            return []
        return [f"{v.key}: {v.what}" for v in self.guard_violations()]

    # -- views -------------------------------------------------------------------------
    @property
    def actionable(self) -> tuple[WalletChange, ...]:
        return tuple(c for c in self.changes if c.is_change)

    @property
    def has_changes(self) -> bool:
        return bool(self.actionable)

    def counts(self) -> dict[str, int]:
        counts = {"add": 0, "change": 0, "replace": 0, "destroy": 0}
        names = {
            Action.CREATE: "add",
            Action.UPDATE: "change",
            Action.REPLACE: "replace",
            Action.DELETE: "destroy",
        }
        for change in self.actionable:
            counts[names[change.action]] += 1
        return counts

    def summary_line(self) -> str:
        c = self.counts()
        return (
            f"Plan: {c['add']} to add, {c['change']} to change, "
            f"{c['replace']} to replace, {c['destroy']} to destroy."
        )

    # -- serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The versioned, deterministic plan document (JSON plan, checksum, Markdown)."""
        body = self._checksummed_body()
        body["checksum"] = self.checksum()
        body["summary"] = self.counts()
        body["unmanaged"] = [u.to_dict() for u in self.unmanaged]
        body["capacity_problems"] = [p.to_dict() for p in self.capacity_problems]
        body["warnings"] = list(self.warnings)
        body["mainnet"] = self.touches_mainnet
        body["force"] = self.force
        body["overrides"] = self.overrides()
        return body

    def _checksummed_body(self) -> dict[str, Any]:
        return {
            "format_version": PLAN_FORMAT_VERSION,
            "stack": self.stack,
            "organization_id": self.organization_id,
            "provider": self.provider_kind,
            "config_digest": self.config_digest,
            "targets": list(self.targets),
            "owned_wallet_ids": list(self.owned_wallet_ids),
            "changes": [c.to_dict() for c in self.actionable],
        }

    def checksum(self) -> str:
        """sha256 over what the plan will do and the live state it was planned against."""
        return "sha256:" + hashlib.sha256(canonical_json(self._checksummed_body())).hexdigest()

    # -- safety ----------------------------------------------------------------------
    def check_safety(
        self, *, allow_delete: bool = False, allow_replace: bool = False, force: bool = False
    ) -> list[SafetyViolation]:
        """Every change the safety rules refuse with the given flags (empty: safe)."""
        violations: list[SafetyViolation] = []
        for change in self.actionable:
            if change.action is Action.REPLACE:
                if change.protected:
                    violations.append(
                        SafetyViolation(change.key, "is protected and would be replaced")
                    )
                elif not allow_replace:
                    why = "; ".join(change.reasons) or "an immutable field changed"
                    violations.append(
                        SafetyViolation(change.key, f"would be replaced ({why})", "--allow-replace")
                    )
                if not force:
                    violations.extend(self._limit_violations(change))
            elif change.action is Action.DELETE:
                if change.protected:
                    violations.append(
                        SafetyViolation(change.key, "is protected and would be deleted")
                    )
                elif change.superseded:
                    if not (allow_replace or allow_delete):
                        violations.append(
                            SafetyViolation(
                                change.key,
                                "an earlier replacement left the old wallet "
                                f"{change.wallet_id} to delete",
                                "--allow-replace",
                            )
                        )
                elif not allow_delete:
                    violations.append(
                        SafetyViolation(
                            change.key,
                            "would be deleted (no longer in the configuration)",
                            "--allow-delete",
                        )
                    )
        if not force:
            violations.extend(self._mass_change_violations())
        for problem in self.capacity_problems:
            violations.append(
                SafetyViolation(f"line of credit {problem.line_of_credit}", problem.message)
            )
        return violations

    def guard_violations(self) -> list[SafetyViolation]:
        """What the mass-change and limit-increase guards refuse (what --force overrides)."""
        out: list[SafetyViolation] = []
        for change in self.actionable:
            out.extend(self._limit_violations(change))
        out.extend(self._mass_change_violations())
        return out

    def _limit_violations(self, change: WalletChange) -> list[SafetyViolation]:
        factor = change.limit_increase_factor()
        if factor is None or factor <= self.guards.limit_increase_factor:
            return []
        return [
            SafetyViolation(
                change.key,
                f"limit would grow {describe_factor(factor)} (guard: "
                f"{self.guards.limit_increase_factor:g}x)",
                "--force",
            )
        ]

    def _mass_change_violations(self) -> list[SafetyViolation]:
        destructive: dict[str, int] = {}
        for change in self.actionable:
            if change.action in (Action.REPLACE, Action.DELETE) and not change.superseded:
                destructive[change.environment] = destructive.get(change.environment, 0) + 1
        out = []
        for environment, count in sorted(destructive.items()):
            managed = self.managed_counts.get(environment, 0)
            if managed < self.guards.mass_change_min_wallets or managed == 0:
                continue
            share = count / managed
            if share > self.guards.mass_change_share:
                out.append(
                    SafetyViolation(
                        f"environment {environment}",
                        f"{count} of {managed} managed wallets would be replaced or deleted "
                        f"({share:.0%}, guard: {self.guards.mass_change_share:.0%})",
                        "--force",
                    )
                )
        return out


def describe_factor(factor: float) -> str:
    """How a limit increase reads: `20x`, or `from 0` for a limit raised from no credit."""
    return "from 0" if math.isinf(factor) else f"{factor:g}x"


def canonical_json(data: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no whitespace) for checksums and digests."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def policies_dict(policies: Policies | None) -> dict[str, Any] | None:
    return policies.to_dict() if policies is not None else None
