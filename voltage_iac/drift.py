"""Drift: what differs between the configuration and the live state, changing nothing.

Pure and kind-neutral: built from a Plan (which already pairs desired with live) and the
LiveState. Called by the engine for `voltage-iac drift`; rendered by render/drift.py as
text, JSON, Markdown or JUnit.

Every finding is a `DriftItem(kind, subject, finding, field, ...)`; the subject is the
entry's key (for unmanaged objects, the object's name). What counts as drift, so that a
nightly job fails only on what needs a person:
- differences, missing, deleted, orphaned, leftover and conflicting objects of this
  stack: always drift;
- objects owned by another stack: never this stack's drift (listed as `foreign`);
- hand-made objects (no owner) in a managed environment: listed as `unmanaged`, and
  drift only when asked (`unmanaged="fail"`).
Ignore rules match `<subject glob>:<field glob>`: per entry (`ignore:` in its entry,
field globs only) and globally (top-level `ignore:`). Ignored findings are kept apart.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from voltage_iac import kinds
from voltage_iac.model import DesiredState, LiveState
from voltage_iac.plan import Action, Plan

#: Version of the drift report document; see docs/formats.md.
DRIFT_FORMAT_VERSION = 2

FINDINGS = (
    "changed",
    "missing",
    "deleted",
    "conflict",
    "orphaned",
    "leftover",
    "deletion_failed",
    "unmanaged",
    "foreign",
)

UNMANAGED_POLICIES = ("report", "fail")


@dataclass(frozen=True)
class DriftItem:
    kind: str  # resource kind ("wallet")
    subject: str  # entry key, or an unmanaged object's name
    finding: str  # one of FINDINGS
    field: str  # the field that differs, or the finding itself for whole-object findings
    expected: Any = None  # from the configuration
    actual: Any = None  # from the live API
    id: str | None = None
    environment: str = ""
    owner_stack: str | None = None

    def describe(self) -> str:
        if self.finding == "changed":
            return f"{self.field}: configured {self.expected!r}, live {self.actual!r}"
        phrases = {
            "missing": f"is in the configuration but no live {self.kind} exists",
            "deleted": "was deleted outside the configuration",
            "conflict": f"its id is taken by a live {self.kind} not labelled as this entry "
            f"({self.actual}); pin the id or delete the stray {self.kind}",
            "orphaned": "is owned by this stack but no longer in the configuration",
            "leftover": f"is an old {self.kind} left over by an interrupted replacement",
            "deletion_failed": f"deletion failed at {self.actual}",
            "unmanaged": "exists in a managed environment but is not managed by any stack",
            "foreign": f"is managed by stack {self.owner_stack}",
        }
        return phrases[self.finding]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "finding": self.finding,
            "field": self.field,
            "expected": self.expected,
            "actual": self.actual,
            "id": self.id,
            "environment": self.environment,
            "owner_stack": self.owner_stack,
            "message": self.describe(),
        }


@dataclass(frozen=True)
class DriftReport:
    stack: str
    subjects: tuple[tuple[str, str], ...]  # every (kind, subject) examined
    items: tuple[DriftItem, ...]  # drift: fails the check
    ignored: tuple[DriftItem, ...]  # matched an ignore rule
    notices: tuple[DriftItem, ...] = ()  # reported, not drift (foreign, unmanaged)
    unmanaged: str = "report"

    @property
    def in_sync(self) -> bool:
        return not self.items

    def items_for(self, kind: str, subject: str) -> list[DriftItem]:
        return [i for i in self.items if i.kind == kind and i.subject == subject]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": DRIFT_FORMAT_VERSION,
            "stack": self.stack,
            "in_sync": self.in_sync,
            "checked": len(self.subjects),
            "unmanaged_policy": self.unmanaged,
            "drift": [i.to_dict() for i in self.items],
            "ignored": [i.to_dict() for i in self.ignored],
            "notices": [i.to_dict() for i in self.notices],
        }


def detect_drift(
    desired: DesiredState, live: LiveState, plan: Plan, *, unmanaged: str = "report"
) -> DriftReport:
    if unmanaged not in UNMANAGED_POLICIES:
        raise ValueError(f"unmanaged must be one of {UNMANAGED_POLICIES}")
    items: list[DriftItem] = []
    notices: list[DriftItem] = []
    deleted_keys = {
        (kind.name, o.owner.key)
        for kind in kinds.registered()
        for o in live.of(kind.name)
        if not o.active and o.owner is not None and o.owner.stack == desired.stack
    }
    for change in plan.changes:
        env = change.environment
        if change.action in (Action.UPDATE, Action.REPLACE):
            for f in change.fields:
                items.append(
                    DriftItem(
                        change.kind,
                        change.key,
                        "changed",
                        f.field,
                        f.after,
                        f.before,
                        change.id,
                        env,
                    )
                )
        elif change.action is Action.CREATE:
            if change.blocked:
                finding = "conflict"
                items.append(
                    DriftItem(
                        change.kind,
                        change.key,
                        finding,
                        finding,
                        actual=change.new_id,
                        id=change.new_id,
                        environment=env,
                    )
                )
                continue
            finding = "deleted" if (change.kind, change.key) in deleted_keys else "missing"
            items.append(DriftItem(change.kind, change.key, finding, finding, environment=env))
        elif change.action is Action.DELETE:
            finding = "leftover" if change.superseded else "orphaned"
            items.append(
                DriftItem(change.kind, change.key, finding, finding, id=change.id, environment=env)
            )
    env_names = {e.id: e.name for e in desired.environments.values()}
    for kind in kinds.registered():
        wanted = desired.of(kind.name)
        pinned = {w.pinned_id: w.key for w in wanted.values() if w.pinned_id}
        for obj in live.of(kind.name):
            owned = obj.owner is not None and obj.owner.stack == desired.stack
            pinned_key = pinned.get(obj.id)
            if obj.deletion_failed_at and (owned or pinned_key):
                subject = pinned_key or (obj.owner.key if obj.owner else obj.id)
                items.append(
                    DriftItem(
                        kind.name,
                        subject,
                        "deletion_failed",
                        "deletion_failed",
                        actual=obj.deletion_failed_at,
                        id=obj.id,
                        environment=env_names.get(obj.environment_id or "", ""),
                    )
                )
    for other in plan.unmanaged:
        finding = "foreign" if other.owner_stack else "unmanaged"
        item = DriftItem(
            other.kind,
            other.name,
            finding,
            finding,
            id=other.id,
            environment=other.environment,
            owner_stack=other.owner_stack,
        )
        if finding == "unmanaged" and unmanaged == "fail":
            items.append(item)
        else:
            notices.append(item)

    kept: list[DriftItem] = []
    ignored: list[DriftItem] = []
    for item in items:
        (ignored if _ignored(item, desired) else kept).append(item)
    shown: list[DriftItem] = []
    for item in notices:
        (ignored if _ignored(item, desired) else shown).append(item)
    notices = shown
    subjects: list[tuple[str, str]] = [
        (kind.name, key) for kind in kinds.registered() for key in desired.of(kind.name)
    ]
    seen = set(subjects)
    for item in sorted(items, key=lambda i: (i.kind, i.subject)):
        if (item.kind, item.subject) not in seen:
            seen.add((item.kind, item.subject))
            subjects.append((item.kind, item.subject))
    return DriftReport(
        desired.stack, tuple(subjects), tuple(kept), tuple(ignored), tuple(notices), unmanaged
    )


def _ignored(item: DriftItem, desired: DesiredState) -> bool:
    entry = desired.of(item.kind).get(item.subject)
    if entry is not None and _any_match(item.field, entry.ignore):
        return True
    names = [item.subject] + ([item.id] if item.id else [])
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
