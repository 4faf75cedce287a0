"""Rotating a resource's secret: `voltage-iac rotate-secret PATH KIND KEY`.

Engine-free and kind-neutral: reads the live state through the backend, finds the live
object this stack owns for entry KEY, and asks the backend for one `rotate_secret`
operation. The backend makes the new secret and hands it to the entry's sink (for a
webhook: its `secret:` file or command); the secret is never returned here, so the
caller cannot print it. This is the fix voltage-iac names whenever a secret the API
shows once did not reach its sink.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from voltage_iac import kinds
from voltage_iac.errors import UsageError, VoltageIacError
from voltage_iac.kinds.base import Operation
from voltage_iac.model import DesiredState
from voltage_iac.providers.base import Backend


@dataclass(frozen=True)
class Rotated:
    kind: str
    key: str
    id: str
    detail: str  # where the new secret went (never the secret)


def rotate_secret(desired: DesiredState, backend: Backend, kind_name: str, key: str) -> Rotated:
    """Rotate the secret of entry `key` of kind `kind_name`; raises on any failure."""
    rotating = [k.name for k in kinds.registered() if k.rotates_secrets]
    if kind_name not in rotating:
        raise UsageError(
            f"{kind_name!r} has no secret to rotate",
            hint="rotate-secret takes one of: " + ", ".join(rotating),
        )
    kind = kinds.get(kind_name)
    entries = desired.of(kind_name)
    want = entries.get(key)
    if want is None:
        keys = sorted(entries)
        close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
        hint = f"the configuration's {kind.plural}: " + ", ".join(keys)
        if close:
            hint = f"did you mean `{close[0]}`? " + hint
        if not keys:
            hint = f"the configuration has no {kind.plural}"
        raise UsageError(f"no {kind_name} `{key}` in the configuration", hint=hint)
    if not backend.spec.supports_kind(kind_name):
        raise UsageError(f"the {backend.spec.name} backend has no {kind.plural}")
    live = backend.read(desired)
    # This stack's object for the entry: the one its pinned id names (an adopted
    # object carries no ownership marker), else the ones whose marker names the entry.
    owned = [
        obj
        for obj in live.of(kind_name)
        if obj.active
        and (
            obj.id == want.pinned_id
            if want.pinned_id
            else obj.owner is not None and obj.owner.stack == desired.stack and obj.owner.key == key
        )
    ]
    if not owned:
        raise VoltageIacError(
            f"{kind_name} `{key}` does not exist yet (no live {kind_name} of stack "
            f"{desired.stack} has that key)",
            hint="run apply: creating it hands its secret to the sink",
        )
    current = max(owned, key=lambda obj: (obj.owner.generation if obj.owner else 0, obj.id))
    operation = Operation(
        kind=kind_name,
        verb="rotate_secret",
        key=key,
        id=current.id,
        stack=desired.stack,
        organization_id=desired.organization_id,
        generation=current.owner.generation if current.owner else 0,
        desired=want,
        live=current,
    )
    backend.execute(operation)
    return Rotated(kind_name, key, current.id, kind.result_detail(want, "rotate_secret"))
