"""Drift: what differs between the configuration and the live wallets, without changing anything.

Pure: built from a Plan (which already pairs desired with live) and the LiveState.
Called by `voltage-iac drift`; rendered by render/drift.py as text, JSON, Markdown or JUnit.

Every finding is a `DriftItem(subject, kind, field, ...)`. Ignore rules match
`<subject glob>:<field glob>`: per wallet (`ignore:` in its entry, field globs only) and
globally (top-level `ignore:`). Subjects are wallet keys; for unmanaged wallets the
subject is the wallet's name or id and the field is `unmanaged`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from voltage_iac.model import DesiredState, LiveState
from voltage_iac.plan import Action, Plan

KINDS = ("changed", "missing", "deleted", "orphaned", "leftover", "deletion_failed", "unmanaged")


@dataclass(frozen=True)
class DriftItem:
    subject: str  # wallet key, or an unmanaged wallet's name
    kind: str  # one of KINDS
    field: str  # the field that differs, or the kind itself for whole-wallet findings
    expected: Any = None  # from the configuration
    actual: Any = None  # from the live API
    wallet_id: str | None = None
    environment: str = ""

    def describe(self) -> str:
        if self.kind == "changed":
            return f"{self.field}: configured {self.expected!r}, live {self.actual!r}"
        phrases = {
            "missing": "is in the configuration but no live wallet exists",
            "deleted": "was deleted outside the configuration",
            "orphaned": "is owned by this stack but no longer in the configuration",
            "leftover": "is an old wallet left over by an interrupted replacement",
            "deletion_failed": f"deletion failed at {self.actual}",
            "unmanaged": "exists in a managed environment but is not managed by this stack",
        }
        return phrases[self.kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "kind": self.kind,
            "field": self.field,
            "expected": self.expected,
            "actual": self.actual,
            "wallet_id": self.wallet_id,
            "environment": self.environment,
            "message": self.describe(),
        }


@dataclass(frozen=True)
class DriftReport:
    stack: str
    subjects: tuple[str, ...]  # every wallet examined (keys, then unmanaged names)
    items: tuple[DriftItem, ...]
    ignored: tuple[DriftItem, ...]

    @property
    def in_sync(self) -> bool:
        return not self.items

    def items_for(self, subject: str) -> list[DriftItem]:
        return [i for i in self.items if i.subject == subject]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": 1,
            "stack": self.stack,
            "in_sync": self.in_sync,
            "wallets_checked": len(self.subjects),
            "drift": [i.to_dict() for i in self.items],
            "ignored": [i.to_dict() for i in self.ignored],
        }


def detect_drift(desired: DesiredState, live: LiveState, plan: Plan) -> DriftReport:
    items: list[DriftItem] = []
    deleted_keys = {
        w.owner.key
        for w in live.wallets
        if not w.active and w.owner is not None and w.owner.stack == desired.stack
    }
    for change in plan.changes:
        env = change.environment
        if change.action in (Action.UPDATE, Action.REPLACE):
            for f in change.fields:
                items.append(
                    DriftItem(
                        change.key, "changed", f.field, f.after, f.before, change.wallet_id, env
                    )
                )
        elif change.action is Action.CREATE:
            kind = "deleted" if change.key in deleted_keys else "missing"
            items.append(DriftItem(change.key, kind, kind, environment=env))
        elif change.action is Action.DELETE:
            kind = "leftover" if change.superseded else "orphaned"
            items.append(
                DriftItem(change.key, kind, kind, wallet_id=change.wallet_id, environment=env)
            )
    env_names = {e.id: e.name for e in desired.environments.values()}
    for wallet in live.wallets:
        owned = wallet.owner is not None and wallet.owner.stack == desired.stack
        pinned_key = next(
            (w.key for w in desired.wallets.values() if w.pinned_id == wallet.id), None
        )
        if wallet.deletion_failed_at and (owned or pinned_key):
            subject = pinned_key or (wallet.owner.key if wallet.owner else wallet.id)
            items.append(
                DriftItem(
                    subject,
                    "deletion_failed",
                    "deletion_failed",
                    actual=wallet.deletion_failed_at,
                    wallet_id=wallet.id,
                    environment=env_names.get(wallet.environment_id or "", ""),
                )
            )
    for unmanaged in plan.unmanaged:
        items.append(
            DriftItem(
                unmanaged.name,
                "unmanaged",
                "unmanaged",
                wallet_id=unmanaged.id,
                environment=unmanaged.environment,
            )
        )

    kept: list[DriftItem] = []
    ignored: list[DriftItem] = []
    for item in items:
        (ignored if _ignored(item, desired) else kept).append(item)
    subjects = list(desired.wallets) + sorted(
        {i.subject for i in items if i.subject not in desired.wallets}
    )
    return DriftReport(desired.stack, tuple(subjects), tuple(kept), tuple(ignored))


def _ignored(item: DriftItem, desired: DesiredState) -> bool:
    wallet = desired.wallets.get(item.subject)
    if wallet is not None and _any_match(item.field, wallet.ignore):
        return True
    names = [item.subject] + ([item.wallet_id] if item.wallet_id else [])
    for pattern in desired.ignore:
        subject_glob, _, field_glob = pattern.rpartition(":")
        if not subject_glob:
            subject_glob, field_glob = "*", pattern
        if any(fnmatch.fnmatchcase(n, subject_glob) for n in names) and fnmatch.fnmatchcase(
            item.field, field_glob
        ):
            return True
    return False


def _any_match(field: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(field, p) for p in patterns)
