"""The diff: desired state + live state -> Plan. Pure, deterministic, and kind-neutral.

Imports the model, the plan and the kind registry, and names no kind. Called by the
engine after a backend's read, and by tests over literal inputs. No I/O, clock or
randomness: the same inputs always give the same plan, which is what makes plans
reviewable and checksummable.

Rules, the same for every kind:
- Desired and live objects are paired by (kind, key): the key comes from the ownership
  the backend read (`Ownership.key`), or from a pinned id; never from content. Only the
  fields the kind manages are compared (the kind's `compare`), so balances and timestamps
  can never show up as changes.
- Only objects owned by this stack are updated or deleted. Everything else in a managed
  environment is listed as unmanaged and left alone.
- An id is created once: a create is never planned for an id the live listing already
  holds, whatever that object's labels say; such a conflict blocks the change.
- A field change the kind cannot make in place is a replacement: a new object with the
  next generation's id, then the old one deleted. Objects left over by an interrupted
  replacement are planned for deletion (marked `superseded`).
- Protection recorded on a live object, and funds it holds, block its deletion or
  replacement whether or not it is still in the configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from voltage_iac import kinds
from voltage_iac.kinds.base import DiffContext, ResourceKind
from voltage_iac.model import DesiredState, LiveState
from voltage_iac.plan import Action, Change, Plan, Problem, Unmanaged


def diff(desired: DesiredState, live: LiveState, *, targets: Sequence[str] | None = None) -> Plan:
    """Compare the configuration with the live state and return the plan."""
    ctx = DiffContext(
        desired=desired,
        live=live,
        env_names={env.id: env.name for env in desired.environments.values()},
    )
    changes: list[Change] = []
    unmanaged: list[Unmanaged] = []
    problems: list[Problem] = []
    warnings: list[str] = []
    owned_refs: list[str] = []
    managed_counts: dict[str, int] = {}
    for kind in kinds.registered():
        result = _KindDiff(kind, ctx)
        changes.extend(result.changes)
        unmanaged.extend(result.unmanaged)
        warnings.extend(result.warnings)
        owned_refs.extend(f"{kind.name}:{i}" for i in result.owned_ids)
        for scope, count in result.managed_counts.items():
            managed_counts[scope] = managed_counts.get(scope, 0) + count
        kind_changes = result.changes
        if targets:
            kind_changes = [c for c in kind_changes if c.key in set(targets)]
        problems.extend(kind.problems(ctx, kind_changes))

    if targets:
        wanted = set(targets)
        changes = [c for c in changes if c.key in wanted]
    changes.sort(
        key=lambda c: (c.environment, c.kind, c.key, c.action is Action.DELETE, c.id or "")
    )
    return Plan(
        stack=desired.stack,
        organization_id=desired.organization_id,
        provider_kind=desired.provider_kind,
        config_digest=desired.digest,
        changes=tuple(changes),
        unmanaged=tuple(unmanaged),
        problems=tuple(problems),
        warnings=tuple(warnings),
        targets=tuple(sorted(set(targets))) if targets else (),
        owned=tuple(sorted(owned_refs)),
        managed_counts=dict(sorted(managed_counts.items())),
        guards=desired.guards,
    )


def owner_key(obj: Any, stack: str, pinned_ids: Mapping[str, str]) -> str | None:
    """The key of this stack's entry that owns live object `obj`, or None."""
    if obj.id in pinned_ids:
        return pinned_ids[obj.id]
    if obj.owner is not None and obj.owner.stack == stack:
        return str(obj.owner.key)
    return None


def _active(objects: Iterable[Any]) -> list[Any]:
    return [o for o in objects if o.active]


def _generation(obj: Any) -> int:
    return int(obj.owner.generation) if obj.owner else 0


class _KindDiff:
    """The diff of one kind (a class only to share its working tables)."""

    def __init__(self, kind: ResourceKind, ctx: DiffContext) -> None:
        self.kind = kind
        self.ctx = ctx
        desired = ctx.desired
        self.wanted: Mapping[str, Any] = desired.of(kind.name)
        self.live_objects = ctx.live.of(kind.name)
        self.by_id = {o.id: o for o in self.live_objects}
        self.pinned = {w.pinned_id: w.key for w in self.wanted.values() if w.pinned_id}
        self.owned: dict[str, list[Any]] = {}
        for obj in self.live_objects:
            key = owner_key(obj, desired.stack, self.pinned)
            if key is not None:
                self.owned.setdefault(key, []).append(obj)
        self.changes: list[Change] = []
        self.warnings: list[str] = []
        self._run()

    # -- the pass ------------------------------------------------------------------------
    def _run(self) -> None:
        kind, stack = self.kind, self.ctx.desired.stack
        for key, want in self.wanted.items():
            self.changes.extend(self._changes_for(want, self.owned.get(key, [])))
        for key in sorted(set(self.owned) - set(self.wanted)):
            for obj in _active(self.owned[key]):
                self.changes.append(self._delete(key, obj, superseded=False))
        for obj in self.live_objects:
            if obj.deletion_failed_at and owner_key(obj, stack, self.pinned):
                self.warnings.append(
                    f"{kind.name} {obj.id} ({obj.name}): deletion failed at "
                    f"{obj.deletion_failed_at}"
                )
        self.unmanaged = [
            Unmanaged(
                kind=kind.name,
                id=o.id,
                name=o.name,
                environment=self._env_name(o),
                owner_stack=o.owner.stack if o.owner else None,
            )
            for o in sorted(self.live_objects, key=lambda o: (o.environment_id or "", o.name, o.id))
            if o.active and owner_key(o, stack, self.pinned) is None
        ]
        self.owned_ids = sorted(o.id for objs in self.owned.values() for o in objs if o.active)
        counts: dict[str, int] = {}
        for key, objs in self.owned.items():
            if _active(objs) and key in self.wanted:
                scope = f"{kind.name}:{self.wanted[key].environment}"
                counts[scope] = counts.get(scope, 0) + 1
        for change in self.changes:
            if change.action is Action.DELETE and not change.superseded:
                scope = f"{kind.name}:{change.environment}"
                counts[scope] = counts.get(scope, 0) + 1
        self.managed_counts = counts

    def _env_name(self, obj: Any) -> str:
        env_id = obj.environment_id or ""
        return self.ctx.env_names.get(env_id, env_id or "default")

    # -- one entry -----------------------------------------------------------------------
    def _changes_for(self, want: Any, objects: list[Any]) -> list[Change]:
        kind = self.kind
        next_generation = max((_generation(o) for o in objects), default=-1) + 1
        active = _active(objects)
        if want.pinned_id and want.pinned_id not in self.by_id:
            self.warnings.append(
                f"{want.key}: pinned {kind.name} {want.pinned_id} was not found; "
                f"a new {kind.name} is planned"
            )
        if not active:
            return [self._create(want, next_generation)]

        # The current object: the pinned one, else the newest generation; older ones are
        # leftovers of an interrupted replacement.
        active.sort(key=lambda o: (o.id == want.pinned_id, _generation(o), o.id), reverse=True)
        current, leftovers = active[0], active[1:]
        out = [self._delete(want.key, o, superseded=True) for o in leftovers]

        fields = kind.compare(self.ctx, want, current)
        replace = any(f.forces_replacement for f in fields)
        action = Action.REPLACE if replace else Action.UPDATE if fields else Action.NOOP
        new_id = self._new_id(want, next_generation) if replace else None
        blocked = list(self._blocked(action, current))
        if new_id is not None:
            blocked.extend(self._id_taken(new_id, want.key))
        out.append(
            Change(
                kind=kind.name,
                key=want.key,
                action=action,
                environment=want.environment,
                name=want.name,
                id=current.id,
                new_id=new_id,
                generation=next_generation if replace else None,
                fields=tuple(fields),
                reasons=kind.replace_reasons(fields) if replace else (),
                protected=want.protect or kind.protected_live(current),
                mainnet=kind.mainnet(want, current),
                has_funds=kind.has_funds(current),
                guarded=kind.guarded(action, fields, self.ctx.desired.guards),
                blocked=tuple(blocked),
                notes=kind.notes(action, fields),
                live_snapshot=kind.snapshot(current),
                desired=want,
                live=current,
            )
        )
        return out

    def _new_id(self, want: Any, generation: int) -> str | None:
        return self.kind.new_id(self.ctx, want, generation)

    def _id_taken(self, new_id: str, key: str) -> list[str]:
        """A create for an id the listing already holds can never be right."""
        taken = self.by_id.get(new_id)
        if taken is None:
            return []
        kind = self.kind.name
        if not taken.active:
            return []  # a deleted id: the next generation is planned (see _create)
        return [
            f"{kind} id {new_id} already exists ({taken.name!r}) but is not labelled as "
            f"this stack's {key!r}, so it cannot be created again; pin it with `id: {new_id}` "
            f"to adopt it, or delete the stray {kind}"
        ]

    def _create(self, want: Any, generation: int) -> Change:
        kind = self.kind
        new_id = self._new_id(want, generation)
        # A deleted object's id can never be used again: skip past every generation whose
        # id the listing holds as inactive.
        while new_id is not None and new_id in self.by_id and not self.by_id[new_id].active:
            generation += 1
            new_id = self._new_id(want, generation)
        blocked = tuple(self._id_taken(new_id, want.key)) if new_id else ()
        return Change(
            kind=kind.name,
            key=want.key,
            action=Action.CREATE,
            environment=want.environment,
            name=want.name,
            new_id=new_id,
            generation=generation,
            fields=tuple(kind.create_fields(self.ctx, want)),
            protected=want.protect,
            mainnet=kind.mainnet(want, None),
            blocked=blocked,
            desired=want,
        )

    def _delete(self, key: str, obj: Any, *, superseded: bool) -> Change:
        kind = self.kind
        want = self.wanted.get(key)
        return Change(
            kind=kind.name,
            key=key,
            action=Action.DELETE,
            environment=self._env_name(obj),
            name=obj.name,
            id=obj.id,
            fields=tuple(kind.delete_fields(obj)),
            superseded=superseded,
            protected=kind.protected_live(obj) or (want is not None and want.protect),
            mainnet=kind.mainnet(None, obj),
            has_funds=kind.has_funds(obj),
            blocked=tuple(self._blocked(Action.DELETE, obj)),
            reasons=(
                ("left over by an interrupted replacement",)
                if superseded
                else ("no longer in the configuration",)
            ),
            live_snapshot=kind.snapshot(obj),
            live=obj,
        )

    def _blocked(self, action: Action, obj: Any) -> list[str]:
        if action not in (Action.REPLACE, Action.DELETE) or not self.kind.has_funds(obj):
            return []
        verb = "replaced" if action is Action.REPLACE else "deleted"
        return [
            f"holds funds, so it cannot be {verb} ({self.kind.name} {obj.id}); drain it "
            "first: the API refuses to delete a funded "
            f"{self.kind.name}, and a half-done replacement would leave two live "
            f"{self.kind.plural} for one entry"
        ]
