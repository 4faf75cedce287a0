"""The plan: typed, ordered, serialisable changes of any resource kind, and the safety
policy that guards them.

Pure: imports only errors and model. `diff.diff()` builds a `Plan`; renderers read
`Plan.to_dict()` (the JSON plan, the checksum and the Markdown all come from it); the
engine executes its changes only after `Plan.check_safety()` found nothing to refuse.
No clock, randomness or I/O here: the same inputs always give the same plan and checksum.

The plan knows no resource kind: what is specific to one (which fields force a
replacement, what a guard measures, what protects funds) is decided by the kind when the
change is made, and recorded on the change as data (`forces_replacement`, `guarded`,
`blocked`, `notes`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Any

from voltage_iac.errors import SafetyViolation
from voltage_iac.model import Guards

#: Version of the plan document (JSON plan and plan files); see docs/formats.md.
PLAN_FORMAT_VERSION = 2


class Action(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    NOOP = "no-op"


#: The order of the summary counts (the same words as the actions).
SUMMARY_ACTIONS = (Action.CREATE, Action.UPDATE, Action.REPLACE, Action.DELETE)


@dataclass(frozen=True)
class FieldChange:
    """One field's before and after (None where absent). Values are JSON-ready."""

    field: str
    before: Any
    after: Any
    forces_replacement: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "before": self.before,
            "after": self.after,
            "forces_replacement": self.forces_replacement,
        }


@dataclass(frozen=True)
class Change:
    """What the plan does to one resource of one kind."""

    kind: str
    key: str
    action: Action
    environment: str
    name: str
    id: str | None = None  # the live resource acted on (update/replace/delete)
    new_id: str | None = None  # the resource to create (create/replace), if ids are ours
    generation: int | None = None  # generation of the resource to create
    fields: tuple[FieldChange, ...] = ()
    reasons: tuple[str, ...] = ()
    protected: bool = False
    superseded: bool = False  # delete of a resource left over by an interrupted replacement
    mainnet: bool = False
    has_funds: bool = False
    #: what the guards refuse without --force (e.g. "limit would grow 20x (guard: 10x)")
    guarded: tuple[str, ...] = ()
    #: why this change can never be applied as planned (no flag overrides it)
    blocked: tuple[str, ...] = ()
    #: short facts a reviewer should see (e.g. "limit grows 20x")
    notes: tuple[str, ...] = ()
    live_snapshot: Mapping[str, Any] | None = None  # managed live fields planned against
    desired: Any = field(default=None, compare=False, repr=False)
    live: Any = field(default=None, compare=False, repr=False)

    @property
    def is_change(self) -> bool:
        return self.action is not Action.NOOP

    @property
    def ref(self) -> str:
        """`kind key`, how messages name the resource."""
        return f"{self.kind} {self.key}"

    def field(self, name: str) -> FieldChange | None:
        for change in self.fields:
            if change.field == name:
                return change
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "action": self.action.value,
            "environment": self.environment,
            "name": self.name,
            "id": self.id,
            "new_id": self.new_id,
            "generation": self.generation,
            "protected": self.protected,
            "superseded": self.superseded,
            "mainnet": self.mainnet,
            "has_funds": self.has_funds,
            "guarded": list(self.guarded),
            "blocked": list(self.blocked),
            "notes": list(self.notes),
            "reasons": list(self.reasons),
            "changes": [c.to_dict() for c in self.fields],
            "live": dict(self.live_snapshot) if self.live_snapshot is not None else None,
        }


@dataclass(frozen=True)
class Unmanaged:
    """A live resource in a managed environment that this stack does not own."""

    kind: str
    id: str
    name: str
    environment: str
    owner_stack: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "environment": self.environment,
            "owner_stack": self.owner_stack,
        }


@dataclass(frozen=True)
class Problem:
    """Something that blocks the whole plan (e.g. a line of credit too small for it)."""

    subject: str  # e.g. "line of credit main"
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "message": self.message}


#: Verdict types of the policy rules (conftest's): `deny` and `violation` block an apply.
VERDICT_TYPES = ("deny", "violation", "warn")


@dataclass(frozen=True)
class Verdict:
    """One message of a policy rule about a plan (or a drift report)."""

    type: str  # "deny", "violation" or "warn"
    rule: str  # the rule's name, e.g. "deny" or "deny_mainnet_cap"
    message: str
    id: str  # what `--override-policy` names (the message's own `id`, or derived)
    file: str = ""  # the policy file defining the rule
    kind: str | None = None  # the resource the verdict is about, if the rule says
    key: str | None = None

    @property
    def blocking(self) -> bool:
        return self.type != "warn"

    def about(self, change: Change) -> bool:
        """The verdict names this change's resource (by key, and by kind if given)."""
        return self.key == change.key and self.kind in (None, change.kind)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "rule": self.rule,
            "message": self.message,
            "id": self.id,
            "file": self.file,
            "kind": self.kind,
            "key": self.key,
        }


@dataclass(frozen=True)
class PolicyResult:
    """The verdicts of the policies on one plan, and the blocking ones a reviewed
    override lets through (by id or by exact message)."""

    namespace: str
    files: tuple[str, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    overrides: tuple[str, ...] = ()

    def overridden(self, verdict: Verdict) -> bool:
        return verdict.blocking and (
            verdict.id in self.overrides or verdict.message in self.overrides
        )

    def blocking(self) -> list[Verdict]:
        """The deny and violation verdicts no override lets through."""
        return [v for v in self.verdicts if v.blocking and not self.overridden(v)]

    def counts(self) -> dict[str, int]:
        return {
            "deny": sum(1 for v in self.verdicts if v.blocking),
            "warn": sum(1 for v in self.verdicts if not v.blocking),
            "overridden": sum(1 for v in self.verdicts if self.overridden(v)),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "files": list(self.files),
            "verdicts": [v.to_dict() for v in self.verdicts],
            "overrides": list(self.overrides),
            "summary": self.counts(),
        }


@dataclass(frozen=True)
class Plan:
    stack: str
    organization_id: str
    provider_kind: str
    config_digest: str
    changes: tuple[Change, ...] = ()
    unmanaged: tuple[Unmanaged, ...] = ()
    problems: tuple[Problem, ...] = ()
    warnings: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    #: every owned live resource seen (active), as "kind:id", sorted
    owned: tuple[str, ...] = ()
    #: managed resources per "kind:environment" (for the mass-change guard)
    managed_counts: Mapping[str, int] = field(default_factory=dict)
    guards: Guards = field(default_factory=Guards)
    force: bool = False  # made with --force: the guards' verdicts are overridden, and recorded
    #: the policies' verdicts (None: no policies); in the checksum, so a reviewed plan's
    #: verdicts and overrides cannot be edited
    policy: PolicyResult | None = None

    @property
    def touches_mainnet(self) -> bool:
        """True when any change acts on a mainnet resource (real money)."""
        return any(c.mainnet for c in self.actionable)

    def overrides(self) -> list[str]:
        """The guards that --force overrides in this plan (empty unless made with force)."""
        if not self.force:
            return []
        return [f"{v.key}: {v.what}" for v in self.guard_violations()]

    # -- views -------------------------------------------------------------------------
    @cached_property
    def actionable(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.is_change)

    @property
    def has_changes(self) -> bool:
        return bool(self.actionable)

    def counts(self) -> dict[str, int]:
        counts = {action.value: 0 for action in SUMMARY_ACTIONS}
        for change in self.actionable:
            counts[change.action.value] += 1
        return counts

    def summary_line(self) -> str:
        c = self.counts()
        return (
            f"Plan: {c['create']} to add, {c['update']} to change, "
            f"{c['replace']} to replace, {c['delete']} to destroy."
        )

    # -- serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The versioned, deterministic plan document (JSON plan, checksum, Markdown)."""
        body = dict(self._checksummed_body)
        body["checksum"] = self.checksum()
        body["summary"] = self.counts()
        body["unmanaged"] = [u.to_dict() for u in self.unmanaged]
        body["problems"] = [p.to_dict() for p in self.problems]
        body["warnings"] = list(self.warnings)
        body["mainnet"] = self.touches_mainnet
        body["force"] = self.force
        body["overrides"] = self.overrides()
        return body

    @cached_property
    def _checksummed_body(self) -> dict[str, Any]:
        return {
            "format_version": PLAN_FORMAT_VERSION,
            "stack": self.stack,
            "organization_id": self.organization_id,
            "provider": self.provider_kind,
            "config_digest": self.config_digest,
            "targets": list(self.targets),
            "owned": list(self.owned),
            "changes": [c.to_dict() for c in self.actionable],
            # Only with policies: a plan without them keeps the checksum it always had.
            **({"policy": self.policy.to_dict()} if self.policy is not None else {}),
        }

    @cached_property
    def _checksum(self) -> str:
        return "sha256:" + hashlib.sha256(canonical_json(self._checksummed_body)).hexdigest()

    def checksum(self) -> str:
        """sha256 over what the plan will do and the live state it was planned against."""
        return self._checksum

    # -- safety ----------------------------------------------------------------------
    def check_safety(
        self,
        *,
        allow_delete: bool = False,
        allow_replace: bool = False,
        force: bool = False,
        unprotect: frozenset[str] = frozenset(),
    ) -> list[SafetyViolation]:
        """Every change the safety rules refuse with the given flags (empty: safe).

        `unprotect` names the keys whose protection the user lifted for this apply."""
        violations: list[SafetyViolation] = []
        for change in self.actionable:
            violations.extend(SafetyViolation(change.key, why) for why in change.blocked)
            destructive = change.action in (Action.REPLACE, Action.DELETE)
            if destructive and change.protected and change.key not in unprotect:
                verb = "replaced" if change.action is Action.REPLACE else "deleted"
                violations.append(
                    SafetyViolation(
                        change.key, f"is protected and would be {verb}", f"--unprotect {change.key}"
                    )
                )
                continue
            if change.action is Action.REPLACE and not allow_replace:
                why = "; ".join(change.reasons) or "a field fixed at creation changed"
                violations.append(
                    SafetyViolation(change.key, f"would be replaced ({why})", "--allow-replace")
                )
            elif change.action is Action.DELETE and change.superseded:
                if not (allow_replace or allow_delete):
                    violations.append(
                        SafetyViolation(
                            change.key,
                            f"an earlier replacement left the old {change.kind} {change.id} "
                            "to delete",
                            "--allow-replace",
                        )
                    )
            elif change.action is Action.DELETE and not allow_delete:
                violations.append(
                    SafetyViolation(
                        change.key,
                        "would be deleted (no longer in the configuration)",
                        "--allow-delete",
                    )
                )
            if not force:
                violations.extend(
                    SafetyViolation(change.key, what, "--force") for what in change.guarded
                )
        if not force:
            violations.extend(self._mass_change_violations())
        for problem in self.problems:
            violations.append(SafetyViolation(problem.subject, problem.message))
        return violations

    def guard_violations(self) -> list[SafetyViolation]:
        """What the guards refuse without --force (what --force overrides)."""
        out: list[SafetyViolation] = []
        for change in self.actionable:
            out.extend(SafetyViolation(change.key, what, "--force") for what in change.guarded)
        out.extend(self._mass_change_violations())
        return out

    def _mass_change_violations(self) -> list[SafetyViolation]:
        destructive: dict[str, int] = {}
        for change in self.actionable:
            if change.action in (Action.REPLACE, Action.DELETE) and not change.superseded:
                scope = f"{change.kind}:{change.environment}"
                destructive[scope] = destructive.get(scope, 0) + 1
        out = []
        for scope, count in sorted(destructive.items()):
            managed = self.managed_counts.get(scope, 0)
            if managed < self.guards.mass_change_min_wallets or managed == 0:
                continue
            share = count / managed
            if share > self.guards.mass_change_share:
                kind, _, environment = scope.partition(":")
                out.append(
                    SafetyViolation(
                        f"environment {environment}",
                        f"{count} of {managed} managed {kind}s would be replaced or deleted "
                        f"({share:.0%}, guard: {self.guards.mass_change_share:.0%})",
                        "--force",
                    )
                )
        return out


def canonical_json(data: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no whitespace) for checksums and digests."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
