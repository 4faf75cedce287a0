"""Reviewed plan files that cannot go stale or be edited silently.

Pure: a saved plan document (as written by `plan --out`) in, a `ReviewedPlan` or an
error out; and the differences between a reviewed plan and a fresh one. The engine's
review gate refuses (exit 5, nothing written):
- a file whose content no longer matches its own checksum (any edit of what it plans,
  its stack, organization, digest, targets or owned objects), or whose summary, force
  record or overrides disagree with its changes;
- a file made for another stack, organization or configuration than the run's;
- a file whose plan differs from the fresh plan (naming every resource and field).

A plan file (`plan --out`) also records the desired state it was planned from and the
backend (`FILE_FIELDS`, see `voltage_iac.planfile`), covered by its `file_checksum`; the
plan's own `checksum` is unchanged by them, so it stays the one `plan` prints.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from voltage_iac.errors import StalePlanError, UsageError
from voltage_iac.model import DesiredState
from voltage_iac.plan import PLAN_FORMAT_VERSION, SUMMARY_ACTIONS, Change, Plan, canonical_json

#: The fields the checksum covers, in the plan document.
CHECKSUMMED_FIELDS = (
    "format_version",
    "stack",
    "organization_id",
    "provider",
    "config_digest",
    "targets",
    "owned",
    "changes",
)

#: What a plan file (`plan --out`) adds to the plan document, and `file_checksum` covers:
#: the desired state it was planned from and the backend it was planned against.
FILE_FIELDS = ("desired", "backend")


@dataclass(frozen=True)
class ReviewedPlan:
    """A plan file that passed its own integrity checks."""

    document: dict[str, Any]
    source: str

    @property
    def checksum(self) -> str:
        return str(self.document["checksum"])

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.document["targets"])

    @property
    def force(self) -> bool:
        return self.document.get("force") is True

    @property
    def config_digest(self) -> str:
        return str(self.document["config_digest"])

    @property
    def self_contained(self) -> bool:
        """Whether the file records the desired state (so `apply FILE` needs no config)."""
        return isinstance(self.document.get("desired"), dict)

    @property
    def overrides(self) -> tuple[str, ...]:
        return tuple(str(o) for o in self.document.get("overrides") or [])

    @property
    def policy_overrides(self) -> tuple[str, ...]:
        """The policy verdicts the reviewed plan lets through (`plan --override-policy`)."""
        policy = self.document.get("policy")
        if not isinstance(policy, dict):
            return ()
        return tuple(str(o) for o in policy.get("overrides") or [])

    def check_matches(self, desired: DesiredState) -> None:
        """Refuse a plan made for another stack, organization or backend. (A plan made
        from another configuration is refused by the checksum, which covers the config
        digest, with every planned difference named.)"""
        doc = self.document
        differences = [
            f"{label}: the plan file says {doc.get(name)!r}, this run has {value!r}"
            for name, label, value in (
                ("stack", "stack", desired.stack),
                ("organization_id", "organization", desired.organization_id),
                ("provider", "provider", desired.provider_kind),
            )
            if doc.get(name) != value
        ]
        if differences:
            raise StalePlanError(
                f"the reviewed plan {self.source} does not belong to this run; nothing was changed",
                [*differences, "apply it with the configuration it was made from"],
            )


#: Checksummed when present: the policies' verdicts (a plan made without policies has none).
CHECKSUMMED_OPTIONAL = ("policy",)


def checksum_of(document: dict[str, Any]) -> str:
    body = {name: document.get(name) for name in CHECKSUMMED_FIELDS}
    body.update({name: document[name] for name in CHECKSUMMED_OPTIONAL if name in document})
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


def file_checksum_of(document: dict[str, Any]) -> str:
    """sha256 over the plan's checksum and what a plan file adds to the plan document
    (so an edit of the recorded desired state is refused like any other edit)."""
    body = {name: document.get(name) for name in ("checksum", *FILE_FIELDS)}
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


def is_plan_document(doc: Any) -> bool:
    """Whether parsed JSON looks like a plan document (of any version): an object with
    the plan's `format_version` and `checksum`."""
    return isinstance(doc, dict) and "format_version" in doc and "checksum" in doc


def read_plan_document(doc: Any, source: str) -> ReviewedPlan:
    """Check a saved plan document's shape and integrity; raise if it is not intact."""
    if not isinstance(doc, dict) or "format_version" not in doc:
        raise UsageError(f"{source} is not a voltage-iac plan file")
    version = doc.get("format_version")
    if version != PLAN_FORMAT_VERSION:
        raise UsageError(
            f"{source} has plan format {version!r}; this version of voltage-iac reads "
            f"format {PLAN_FORMAT_VERSION}",
            hint="make the plan again with this version (plan --out FILE)",
        )
    for name, kind in (
        ("checksum", str),
        ("config_digest", str),
        ("stack", str),
        ("organization_id", str),
        ("provider", str),
        ("changes", list),
        ("owned", list),
        ("targets", list),
        ("summary", dict),
    ):
        if not isinstance(doc.get(name), kind):
            raise UsageError(f"{source}: field {name!r} is missing or malformed")
    problems = _integrity_problems(doc)
    if problems:
        raise StalePlanError(
            f"the reviewed plan {source} was changed after it was made; nothing was changed",
            [*problems, "make a new plan (plan --out FILE) and have it reviewed again"],
        )
    return ReviewedPlan(doc, source)


def _integrity_problems(doc: dict[str, Any]) -> list[str]:
    out = []
    if checksum_of(doc) != doc["checksum"]:
        out.append(
            "its content does not match its checksum "
            f"(recorded {doc['checksum'][:19]}..., content {checksum_of(doc)[:19]}...)"
        )
    changes = [c for c in doc["changes"] if isinstance(c, dict)]
    if len(changes) != len(doc["changes"]):
        out.append("its changes are not all objects")
    counts = {action.value: 0 for action in SUMMARY_ACTIONS}
    for change in changes:
        action = change.get("action")
        if action in counts:
            counts[action] += 1
        else:
            out.append(f"change {change.get('key')!r} has an unknown action {action!r}")
    if doc["summary"] != counts:
        out.append(f"its summary {doc['summary']} does not count its changes {counts}")
    if not isinstance(doc.get("force"), bool):
        out.append("its force record is missing or not true/false")
    elif not doc["force"] and doc.get("overrides"):
        out.append("it lists overridden guards but was not made with --force")
    if any(name in doc for name in (*FILE_FIELDS, "file_checksum")):
        recorded = doc.get("file_checksum")
        if not isinstance(doc.get("desired"), dict) or not isinstance(doc.get("backend"), str):
            out.append("its recorded desired state or backend is missing or malformed")
        elif recorded != file_checksum_of(doc):
            out.append(
                "its recorded desired state does not match its file_checksum "
                f"(recorded {str(recorded)[:19]}..., content {file_checksum_of(doc)[:19]}...)"
            )
    return out


def stale_differences(saved: dict[str, Any], fresh: Plan) -> list[str]:
    """Why `fresh` differs from the reviewed plan `saved` (empty when they match)."""
    out: list[str] = []
    if saved["config_digest"] != fresh.config_digest:
        out.append(
            "the configuration changed since the plan was made: its digest is "
            f"{fresh.config_digest}, the plan was made from {saved['config_digest']}"
        )
        out.append(
            "to apply the reviewed plan, give the configuration it was made from, or none "
            "(voltage-iac apply PLAN_FILE: the file records it)"
        )
    # A key can have two changes (a leftover of an interrupted replacement to delete, and
    # its current object's change): pair them by kind, key and that distinction.
    fresh_by_key = {(c.kind, c.key, c.superseded): c for c in fresh.changes}
    saved_keys = set()
    for old in saved["changes"]:
        key = old.get("key")
        pair = (old.get("kind"), key, bool(old.get("superseded")))
        saved_keys.add(pair)
        new = fresh_by_key.get(pair)
        if new is None or not new.is_change:
            out.append(f"{key}: no longer needs to be {old.get('action')}d")
        elif new.action.value != old.get("action"):
            out.append(f"{key}: now needs {new.action.value} instead of {old.get('action')}")
        before = old.get("live") or {}
        now = dict(new.live_snapshot) if new is not None and new.live_snapshot else {}
        live_changed = False
        if bool(before) != bool(now):  # one line, not one per field of the whole object
            live_changed = True
            obj = before.get("id") or now.get("id")
            what = "appeared" if now else "disappeared"
            out.append(f"{key}: {old.get('kind')} {obj} {what} since the plan was made")
        for name in sorted(set(before) | set(now)) if before and now else ():
            if before.get(name) != now.get(name):
                live_changed = True
                obj = before.get("id") or now.get("id")
                out.append(
                    f"{key}: {old.get('kind')} {obj} field {name} changed since the plan was "
                    f"made: {before.get(name)!r} -> {now.get(name)!r}"
                )
        if new is not None and new.is_change and not live_changed:
            out.extend(_field_differences(key, old.get("changes") or [], new))
    for change in fresh.actionable:
        if (change.kind, change.key, change.superseded) not in saved_keys:
            out.append(
                f"{change.key}: now needs {change.action.value}, which the reviewed plan "
                "does not contain"
            )
    saved_owned = set(saved["owned"])
    fresh_owned = set(fresh.owned)
    for ref in sorted(fresh_owned - saved_owned):
        out.append(f"owned {_ref(ref)} appeared since the plan was made")
    for ref in sorted(saved_owned - fresh_owned):
        out.append(f"owned {_ref(ref)} disappeared since the plan was made")
    out.extend(_policy_differences(saved.get("policy"), fresh))
    if not out and saved["checksum"] != fresh.checksum():
        out.append("the plan's content differs from the reviewed plan")
    return out


def _ref(ref: Any) -> str:
    kind, _, obj = str(ref).partition(":")
    return f"{kind} {obj}" if obj else kind


def _field_differences(key: Any, reviewed: Sequence[Any], fresh: Change) -> list[str]:
    """The fields whose planned value differs from the reviewed plan's (same live object)."""
    old: dict[Any, Any] = {c.get("field"): c for c in reviewed if isinstance(c, dict)}
    new: dict[Any, Any] = {c.field: c.to_dict() for c in fresh.fields}
    out = []
    for name in sorted(set(old) | set(new), key=str):
        if old.get(name) == new.get(name):
            continue
        was = (old.get(name) or {}).get("after")
        now = (new.get(name) or {}).get("after")
        out.append(f"{key}: field {name} is now planned as {now!r}, the reviewed plan had {was!r}")
    return out


def _policy_differences(saved: Any, fresh: Plan) -> list[str]:
    """How the policies' verdicts or overrides differ from the reviewed plan's."""
    now = fresh.policy.to_dict() if fresh.policy is not None else None
    if saved == now:
        return []
    if not isinstance(saved, dict) or now is None:
        if isinstance(saved, dict):
            return ["the reviewed plan was made with policies; this run has none"]
        return ["the reviewed plan was made without policies; this run has them"]
    out = []
    before = {str(v.get("id")): v for v in saved.get("verdicts") or [] if isinstance(v, dict)}
    after = {v["id"]: v for v in now["verdicts"]}
    for vid in sorted(set(after) - set(before)):
        out.append(f"policy: new {after[vid]['type']} verdict {vid}: {after[vid]['message']}")
    for vid in sorted(set(before) - set(after)):
        out.append(f"policy: verdict {vid} is gone: {before[vid].get('message')}")
    if sorted(saved.get("overrides") or []) != sorted(now["overrides"]):
        out.append(
            f"policy overrides: the reviewed plan has {sorted(saved.get('overrides') or [])}, "
            f"this run {sorted(now['overrides'])}"
        )
    return out or ["the policies' verdicts differ from the reviewed plan's"]
