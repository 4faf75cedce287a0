"""Self-contained plan files: the plan document, plus the desired state it was planned
from, so that `apply FILE` needs no configuration and `show FILE` needs no API.

Pure and kind-neutral: each kind writes and reads its own desired objects
(`ResourceKind.record` / `from_record`); this module only arranges them. A plan file is
the plan document (`Plan.to_dict()`, its `checksum` unchanged) with three more fields:

- `desired`: the desired state: stack, organization, provider, the references
  (environments, lines of credit), guards, ignore rules, the configuration's file names,
  and every kind's entries. It never holds a secret: API keys and tokens come from the
  run's environment, and a webhook's signing secret only ever goes to its sink (the
  sink's file or command is recorded, not a secret).
- `backend`: the backend's secret-free description, for `show`.
- `file_checksum`: over `checksum`, `desired` and `backend` (see `stale.file_checksum_of`).

`stale.read_plan_document` checks both checksums before anything here runs; the config
loader (`config.state_from_plan`) recomputes the rebuilt state's digest and refuses a
record that does not hash to the plan's `config_digest`, then `check_recorded_paths`
refuses a file applied from another directory than the one `plan` ran in (its paths are
recorded relative to it).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from voltage_iac import kinds
from voltage_iac.errors import UsageError
from voltage_iac.kinds.base import ResourceKind, portable_path
from voltage_iac.model import (
    DesiredState,
    Environment,
    Guards,
    LineOfCredit,
    PolicySettings,
    frozen_map,
)
from voltage_iac.plan import (
    Action,
    Change,
    FieldChange,
    Plan,
    PolicyResult,
    Problem,
    Unmanaged,
    Verdict,
)
from voltage_iac.stale import ReviewedPlan, file_checksum_of


def desired_record(desired: DesiredState) -> dict[str, Any]:
    """The desired state as plain JSON values (the plan file's `desired`)."""
    resources: dict[str, Any] = {}
    for kind in kinds.registered():
        entries = desired.of(kind.name)
        if entries:
            resources[kind.name] = {key: kind.record(obj) for key, obj in entries.items()}
    return {
        "stack": desired.stack,
        "organization_id": desired.organization_id,
        "provider": desired.provider_kind,
        "api_url": desired.api_url,
        "provider_options": dict(desired.provider_options),
        "environments": {
            name: {"id": env.id, "network": env.network}
            for name, env in desired.environments.items()
        },
        "lines_of_credit": {name: line.id for name, line in desired.lines_of_credit.items()},
        "guards": dataclasses.asdict(desired.guards),
        "ignore": list(desired.ignore),
        "files": list(desired.files),
        "resources": resources,
        **({"policies": _policies_record(desired.policies)} if desired.policies.paths else {}),
    }


def _policies_record(settings: PolicySettings) -> dict[str, Any]:
    """The policies of the configuration: an apply from the file evaluates them again
    (the plan's verdicts are in its checksum, so changed policies make it stale)."""
    return {
        "paths": [portable_path(p) for p in settings.paths],
        "namespace": settings.namespace,
        "data": [portable_path(p) for p in settings.data],
        "timeout": settings.timeout,
    }


def _policies(record: Any) -> PolicySettings:
    if record is None:
        return PolicySettings()
    return PolicySettings(
        paths=tuple(os.path.abspath(_text(p)) for p in record["paths"]),
        namespace=_text(record["namespace"]),
        data=tuple(os.path.abspath(_text(p)) for p in record["data"]),
        timeout=float(record["timeout"]),
    )


def plan_file_document(plan: Plan, desired: DesiredState, backend: str) -> dict[str, Any]:
    """What `plan --out` writes: the plan document, the desired state and the backend."""
    doc = plan.to_dict()
    doc["desired"] = desired_record(desired)
    doc["backend"] = backend
    doc["file_checksum"] = file_checksum_of(doc)
    return doc


def desired_from_plan(reviewed: ReviewedPlan) -> DesiredState:
    """The desired state a checked plan file records (its `digest` left empty: the
    config loader computes it). Raises UsageError when the file records none or the
    record is malformed."""
    doc = reviewed.document
    if not reviewed.self_contained:
        raise UsageError(
            f"{reviewed.source} does not record the desired state it was planned from "
            "(a JSON plan from `plan --format json`, or a plan file of an earlier version)",
            hint="apply it with its configuration (apply PATH --plan FILE), or make a plan "
            "file with `plan PATH --out FILE`",
        )
    try:
        return _rebuild(doc["desired"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        what = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise UsageError(
            f"{reviewed.source}: its recorded desired state is malformed ({what})",
            hint="make the plan file again (plan PATH --out FILE)",
        ) from None


def check_recorded_paths(reviewed: ReviewedPlan, desired: DesiredState) -> None:
    """Refuse, before anything is read or written, a plan file applied from another
    directory than the one `plan` ran in: its policy and data files, and the folders the
    planned changes use (a webhook's secret sink), are recorded relative to that
    directory, and must exist relative to this one. Raises UsageError naming what is
    missing (paths only: a sink's folder, never a secret)."""
    missing: list[str] = []
    policies = desired.policies
    for what, paths in (("policies", policies.paths), ("policy data", policies.data)):
        missing += [f"{portable_path(p)} ({what})" for p in paths if not os.path.exists(p)]
    for change in reviewed.document.get("changes") or []:
        kind = _kind(change.get("kind"))
        want = desired.of(kind.name).get(change.get("key")) if kind is not None else None
        if kind is None or want is None:
            continue  # a delete: nothing of this machine is used
        action = Action(change["action"])  # the checksum covers it: a plan's own action
        for what, folder in kind.local_folders(want, action):
            if not os.path.isdir(folder):
                missing.append(f"{portable_path(folder)} ({what})")
    missing = list(dict.fromkeys(missing))
    if missing:
        raise UsageError(
            f"{reviewed.source} names paths relative to the directory `plan` ran in, and "
            f"from here ({os.getcwd()}) {len(missing)} of them do not exist: "
            f"{'; '.join(missing)}. Nothing was read or changed.",
            hint="run apply from the directory `plan --out` ran in (in CI: the repository's root)",
        )


def _kind(name: Any) -> ResourceKind | None:
    return next((k for k in kinds.registered() if k.name == name), None)


def _rebuild(record: Mapping[str, Any]) -> DesiredState:
    resources: dict[str, Mapping[str, Any]] = {}
    recorded = record["resources"]
    unknown = sorted(set(recorded) - {kind.name for kind in kinds.registered()})
    if unknown:
        raise ValueError(f"unknown resource kind(s): {', '.join(unknown)}")
    for kind in kinds.registered():
        entries: dict[str, Any] = {}
        for key, data in dict(recorded.get(kind.name) or {}).items():
            obj = kind.from_record(str(key), data)
            if kind.record(obj) != data:  # every field read, none unknown, types kept
                raise ValueError(f"{kind.name} {key} is not a {kind.name} record")
            entries[str(key)] = obj
        resources[kind.name] = frozen_map(entries)
    guards = Guards(**dict(record["guards"]))
    return DesiredState(
        stack=_text(record["stack"]),
        organization_id=_text(record["organization_id"]),
        provider_kind=_text(record["provider"]),
        api_url=record["api_url"] if record["api_url"] is None else _text(record["api_url"]),
        environments=frozen_map(
            {
                str(name): Environment(str(name), _text(env["id"]), _text(env["network"]))
                for name, env in dict(record["environments"]).items()
            }
        ),
        lines_of_credit=frozen_map(
            {
                str(name): LineOfCredit(str(name), _text(line_id))
                for name, line_id in dict(record["lines_of_credit"]).items()
            }
        ),
        resources=frozen_map(resources),
        guards=guards,
        ignore=tuple(_text(p) for p in record["ignore"]),
        provider_options=frozen_map(dict(record["provider_options"])),
        files=tuple(_text(f) for f in record["files"]),
        policies=_policies(record.get("policies")),
    )


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, found {value!r}")
    return value


# -- the plan of a plan document (for `show`) --------------------------------------------


@dataclasses.dataclass(frozen=True)
class SavedPlan(Plan):
    """A plan read back from its document: the guards it overrides are the recorded
    ones (the counts the mass-change guard measured are not part of the document)."""

    recorded_overrides: tuple[str, ...] = ()

    def overrides(self) -> list[str]:
        return list(self.recorded_overrides) if self.force else []


def plan_from_document(reviewed: ReviewedPlan) -> SavedPlan:
    """The `Plan` a checked plan document describes, for the renderers: its `to_dict()`
    gives the plan document back and its checksum is the recorded one."""
    doc = reviewed.document
    try:
        changes = tuple(_change(c) for c in doc["changes"])
        the_plan = SavedPlan(
            stack=doc["stack"],
            organization_id=doc["organization_id"],
            provider_kind=doc["provider"],
            config_digest=doc["config_digest"],
            changes=changes,
            unmanaged=tuple(
                Unmanaged(u["kind"], u["id"], u["name"], u["environment"], u["owner_stack"])
                for u in doc.get("unmanaged") or []
            ),
            problems=tuple(Problem(p["subject"], p["message"]) for p in doc.get("problems") or []),
            warnings=tuple(str(w) for w in doc.get("warnings") or []),
            targets=tuple(doc["targets"]),
            owned=tuple(doc["owned"]),
            force=doc["force"] is True,
            recorded_overrides=tuple(str(o) for o in doc.get("overrides") or []),
            policy=_policy_result(doc.get("policy")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"{reviewed.source}: a change is malformed ({exc})") from None
    if the_plan.checksum() != reviewed.checksum:
        raise UsageError(f"{reviewed.source}: its changes do not read back as planned")
    return the_plan


def _policy_result(data: Any) -> PolicyResult | None:
    """The policies' verdicts a plan document records (in its checksum)."""
    if data is None:
        return None
    return PolicyResult(
        namespace=data["namespace"],
        files=tuple(data["files"]),
        verdicts=tuple(
            Verdict(
                type=v["type"],
                rule=v["rule"],
                message=v["message"],
                id=v["id"],
                file=v["file"],
                kind=v["kind"],
                key=v["key"],
            )
            for v in data["verdicts"]
        ),
        overrides=tuple(data["overrides"]),
    )


def _change(data: Mapping[str, Any]) -> Change:
    return Change(
        kind=data["kind"],
        key=data["key"],
        action=Action(data["action"]),
        environment=data["environment"],
        name=data["name"],
        id=data["id"],
        new_id=data["new_id"],
        generation=data["generation"],
        fields=tuple(
            FieldChange(f["field"], f["before"], f["after"], f["forces_replacement"])
            for f in data["changes"]
        ),
        reasons=tuple(data["reasons"]),
        protected=data["protected"],
        superseded=data["superseded"],
        mainnet=data["mainnet"],
        has_funds=data["has_funds"],
        guarded=tuple(data["guarded"]),
        blocked=tuple(data["blocked"]),
        notes=tuple(data["notes"]),
        live_snapshot=data["live"],
    )
