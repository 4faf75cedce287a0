"""What every resource kind provides, and the operations a change becomes.

Imports only the model and the plan. A kind is a registered unit (see
`voltage_iac.kinds`): it owns its desired and live types, its pure field rules (which
fields change in place, which force a replacement), how its ids are made, what protects
funds, and how one planned change becomes backend operations. The generic diff, the
engine, the renderers and drift call a kind only through this interface.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from voltage_iac.model import EMPTY, DesiredState, Guards, LiveState
from voltage_iac.plan import Action, Change, FieldChange, Plan, Problem


@dataclass(frozen=True)
class Operation:
    """One backend call the engine asks for: data, so every backend reads it the same way.

    `id` is the resource acted on; for a create it is the planned id (None when the
    backend picks ids). An operation after a create in the same change with `id=None`
    acts on the resource that create made (the engine fills it in)."""

    kind: str
    verb: str  # "create", "update", "delete", or a verb of the kind ("set_policies", ...)
    key: str
    id: str | None
    stack: str
    organization_id: str
    generation: int | None = None
    desired: Any = field(default=None, compare=False, repr=False)
    live: Any = field(default=None, compare=False, repr=False)
    params: Mapping[str, Any] = field(default_factory=lambda: EMPTY)

    def describe(self) -> str:
        return f"{self.verb} {self.kind} {self.key}" + (f" ({self.id})" if self.id else "")


@dataclass(frozen=True)
class DiffContext:
    """What a kind may read while it compares one desired object with the live one."""

    desired: DesiredState
    live: LiveState
    env_names: Mapping[str, str]  # environment id -> name in the config


class ResourceKind:
    """Base class of a resource kind. Subclasses set the names and override the rules."""

    #: the kind's name in plans and registries ("wallet")
    name: str = ""
    #: the configuration section that declares it ("wallets")
    section: str = ""
    #: how a reader calls several of them ("wallets")
    plural: str = ""
    #: whether the kind has a secret the backend can rotate (`rotate_secret` operation)
    rotates_secrets: bool = False

    # -- identity ----------------------------------------------------------------------
    def new_id(self, ctx: DiffContext, want: Any, generation: int) -> str | None:
        """The id of generation `generation` of `want`, or None when the backend picks it."""
        return None

    # -- field rules (pure) ------------------------------------------------------------
    def create_fields(self, ctx: DiffContext, want: Any) -> list[FieldChange]:
        return [FieldChange("name", None, want.name)]

    def compare(self, ctx: DiffContext, want: Any, current: Any) -> list[FieldChange]:
        """The managed fields on which `current` differs from `want`; a field change
        that cannot be made in place has `forces_replacement=True`."""
        return []

    def replace_reasons(self, fields: Sequence[FieldChange]) -> tuple[str, ...]:
        return ("a field fixed at creation changed",)

    def delete_fields(self, current: Any) -> list[FieldChange]:
        return [FieldChange("name", current.name, None)]

    def snapshot(self, current: Any) -> dict[str, Any]:
        """The managed fields of a live object, as planned against (stale-plan checks)."""
        return {"id": current.id, "name": current.name, "active": current.active}

    # -- money and safety (pure) -------------------------------------------------------
    def mainnet(self, want: Any | None, current: Any | None) -> bool:
        return False

    def has_funds(self, current: Any) -> bool:
        return False

    def protected_live(self, current: Any) -> bool:
        """Protection recorded on the live object itself (survives removal from config)."""
        return False

    def guarded(
        self, action: Action, fields: Sequence[FieldChange], guards: Guards
    ) -> tuple[str, ...]:
        """What the guards refuse in this change without --force."""
        return ()

    def notes(self, action: Action, fields: Sequence[FieldChange]) -> tuple[str, ...]:
        return ()

    def problems(self, ctx: DiffContext, changes: Sequence[Change]) -> list[Problem]:
        """Plan-wide problems of this kind's changes (e.g. capacity), which block apply."""
        return []

    # -- import ------------------------------------------------------------------------
    def import_sections(
        self, desired: DesiredState, live: LiveState, environment: str
    ) -> tuple[dict[str, Any], list[str]]:
        """Config sections adopting this kind's unmanaged objects in `environment`, and
        notes on what was skipped. A kind that cannot adopt objects returns nothing."""
        return {}, []

    # -- reviewed plan files -----------------------------------------------------------
    def record(self, want: Any) -> dict[str, Any]:
        """`want` as plain JSON values, for the desired state a plan file records (so
        that `apply FILE` needs no configuration). Never holds a secret. Every field a
        plan, an apply or the configuration digest reads must be in it: `from_record`
        of the result must equal `want`."""
        raise NotImplementedError(f"the {self.name} kind cannot be recorded in a plan file")

    def from_record(self, key: str, data: Any) -> Any:
        """The desired object `record` wrote (raise ValueError, KeyError or TypeError
        when `data` is not such a record)."""
        raise NotImplementedError(f"the {self.name} kind cannot be read from a plan file")

    def local_folders(self, want: Any, action: Action) -> list[tuple[str, str]]:
        """The folders on this machine that carrying out `action` on `want` uses, as
        (what, path) (e.g. where a webhook's signing secret goes). A plan file records
        them relative to the directory `plan` ran in; an apply from the file checks they
        exist before any write."""
        return []

    # -- apply -------------------------------------------------------------------------
    def result_detail(self, want: Any | None, verb: str) -> str:
        """A short, secret-free note shown with a done result of `verb` on `want` (e.g.
        where a secret the API showed once was handed); empty when there is none."""
        return ""

    def operation(
        self, change: Change, plan: Plan, verb: str, target: str | None, **params: Any
    ) -> Operation:
        """One operation of `change` (`target`: the id it acts on)."""
        return Operation(
            kind=self.name,
            verb=verb,
            key=change.key,
            id=target,
            stack=plan.stack,
            organization_id=plan.organization_id,
            generation=change.generation,
            desired=change.desired,
            live=change.live,
            params=params,
        )

    def operations(self, change: Change, plan: Plan) -> list[Operation]:
        """The backend operations that carry out `change`, in order."""
        if change.action is Action.CREATE:
            return [self.operation(change, plan, "create", change.new_id)]
        if change.action is Action.UPDATE:
            fields = [f.field for f in change.fields]
            return [self.operation(change, plan, "update", change.id, fields=fields)]
        if change.action is Action.REPLACE:
            return [
                self.operation(change, plan, "create", change.new_id),
                self.operation(change, plan, "delete", change.id),
            ]
        if change.action is Action.DELETE:
            return [self.operation(change, plan, "delete", change.id)]
        return []


def planned_id(
    ctx: DiffContext, want: Any, generation: int, derive: Callable[[str, str, str, str, int], str]
) -> str | None:
    """The id `derive` (organization, environment, stack, key, generation -> id) gives
    generation `generation` of `want`; None when the backend picks ids or `want` has no
    environment id."""
    if not ctx.live.client_chosen_ids or want.environment_id is None:
        return None
    return derive(
        ctx.desired.organization_id, want.environment_id, ctx.desired.stack, want.key, generation
    )


def environment_change(ctx: DiffContext, want: Any, current: Any) -> list[FieldChange]:
    """The change of environment (fixed at creation, so it forces a replacement) when
    `current` is in another environment than `want` names; none when `want` has no
    environment id."""
    if want.environment_id is None or want.environment_id == current.environment_id:
        return []
    before = ctx.env_names.get(current.environment_id or "", current.environment_id)
    return [FieldChange("environment", before, want.environment, True)]


def record_of(want: Any, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A `record` of `want`: its name and environment, the kind's own `fields`, then
    protect, pinned id and ignore patterns (the order plan files have always had)."""
    return {
        "name": want.name,
        "environment": want.environment,
        "environment_id": want.environment_id,
        **fields,
        "protect": want.protect,
        "pinned_id": want.pinned_id,
        "ignore": list(want.ignore),
    }


def portable_path(path: str) -> str:
    """A path as a plan file records it: relative to the working directory (plan and
    apply run from the same place, e.g. a repository's root in CI), or absolute when it
    is on another drive."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return os.path.abspath(path)
