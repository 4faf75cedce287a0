"""Step 4 and 5 of loading: the meaning checks, then the `DesiredState` and its digest.

Flow: `merge.py` gives the merged files -> `check` reads `provider:` (which backend:
`checks/provider.py`), refuses every section, resource kind and field the backend's
declaration (`providers/registry.py`) does not support, runs the checker of every
registered section (`checks/registry.py`: reference sections first, then resources),
then guards and ignore (`checks/guards.py`) and the policy paths (`checks/policies.py`)
-> the frozen `DesiredState`. `state_digest` hashes its meaning (the policies are not
part of it: their verdicts are in the plan's checksum themselves). The entry points in
`__init__.py` drive the whole flow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from voltage_iac import kinds
from voltage_iac.config.checks import registry
from voltage_iac.config.checks.guards import check_guards, check_ignore
from voltage_iac.config.checks.policies import check_policies
from voltage_iac.config.checks.provider import check_provider
from voltage_iac.config.checks.registry import Context, Section
from voltage_iac.config.document import Doc, Issues
from voltage_iac.config.merge import Merged, merge
from voltage_iac.config.schema import entry_fields
from voltage_iac.model import DesiredState, frozen_map
from voltage_iac.providers.registry import BackendSpec


def _declared(backend: BackendSpec, section: Section) -> bool:
    if section.kind is None:
        return section.name in backend.sections
    return backend.supports_kind(section.kind)


def _refuse_undeclared(ctx: Context) -> None:
    """Every section, resource kind and field the backend does not declare: refused,
    with the backend's reason, at the place it is written."""
    backend = ctx.backend
    for section in registry.sections():
        if not _declared(backend, section):
            reason = backend.reasons.get(section.name) or backend.reason(
                section.kind or section.name
            )
            for place in ctx.merged.places.get(section.name, []):
                ctx.issues.at(
                    place.doc,
                    place.path,
                    f"`{section.name}` is not supported by the {backend.name} provider",
                    reason,
                    key=True,
                )
                ctx.dropped = True
            continue
        if section.kind is None:
            continue
        fields = entry_fields(section.name)
        for entry in ctx.merged.entries(section.name).values():
            if not isinstance(entry.value, dict):
                continue
            for name in entry.value:
                if name in fields and not backend.supports_field(section.kind, name):
                    ctx.issues.at(
                        entry.doc,
                        (*entry.path, name),
                        f"`{name}` is not supported by the {backend.name} provider",
                        backend.reason(f"{section.kind}.{name}"),
                        key=True,
                    )
                    ctx.dropped = True


def _check_sections(ctx: Context) -> None:
    for section in registry.sections():
        if not _declared(ctx.backend, section):
            continue
        places = ctx.merged.places.get(section.name, [])
        if (
            section.required
            and not ctx.merged.entries(section.name)
            and not any(not isinstance(p.value, dict) for p in places)
        ):
            ctx.issues.at(ctx.first, (), f"no {section.plural} are defined", section.required)
        ctx.resolved[section.name] = section.check(ctx)


def check(docs: list[Doc], issues: Issues, environ: Mapping[str, str]) -> DesiredState | None:
    """The checked state of the merged files; None when anything is wrong (reported)."""
    merged: Merged = merge(docs, issues)
    first = docs[0]
    stack = merged.single.get("stack")
    if stack is None:
        issues.at(
            first,
            (),
            "missing `stack`",
            "add `stack: <name>` (e.g. stack: acme): the ownership label of the wallets "
            "this configuration manages",
        )
    backend, settings = check_provider(merged, issues, environ, first)
    dropped = False
    resolved: dict[str, Mapping[str, Any]] = {}
    if backend is not None:
        ctx = Context(merged, issues, backend, first)
        _refuse_undeclared(ctx)
        _check_sections(ctx)
        dropped, resolved = ctx.dropped, ctx.resolved
    guards = check_guards(merged, issues)
    ignore = check_ignore(merged)
    policies = check_policies(merged, issues)
    if backend is None or settings is None or guards is None or ignore is None or dropped:
        return None
    if policies is None:
        return None
    if stack is None or not isinstance(stack.value, str):
        return None
    state = DesiredState(
        stack=stack.value,
        organization_id=settings.organization_id,
        provider_kind=backend.name,
        api_url=settings.api_url,
        guards=guards,
        ignore=ignore,
        provider_options=frozen_map(dict(settings.options)),
        files=tuple(doc.file for doc in docs),
        policies=policies,
    )
    references: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    for section in registry.sections():
        entries = frozen_map(dict(resolved.get(section.name, {})))
        kind = kinds.by_section(section.name)
        if kind is not None:
            resources[kind.name] = entries
        else:
            references[section.name] = entries
    return dataclasses.replace(state, resources=frozen_map(resources), **references)


def _section_entries(state: DesiredState, name: str) -> Mapping[str, Any]:
    """A section's entries: a resource kind's objects, or a reference section."""
    kind = kinds.by_section(name)
    if kind is not None:
        return state.of(kind.name)
    return getattr(state, name, None) or {}


# --------------------------------------------------------------------------------------
# Digest


def _fixed(state: DesiredState) -> dict[str, Any]:
    """The settings of the digest that are not a section's entries."""
    return {
        "stack": state.stack,
        "organization_id": state.organization_id,
        "provider_kind": state.provider_kind,
        "api_url": state.api_url,
        "provider_options": dict(state.provider_options),
        "guards": dataclasses.asdict(state.guards),
        "ignore": list(state.ignore),
    }


def _canonical(state: DesiredState) -> dict[str, Any]:
    out = _fixed(state)
    for section in registry.sections():
        entries = _section_entries(state, section.name)
        if entries or section.digest_when_empty:
            out[section.name] = {name: section.canonical(item) for name, item in entries.items()}
    return out


def state_digest(state: DesiredState) -> str:
    """sha256 (hex) over the canonical JSON of the desired state: sorted keys, no
    sources or file names, so comments, key order and file layout do not change it.
    A section added later is left out while it is empty, so existing digests stay."""
    digest = hashlib.sha256()
    batch: list[str] = []
    for piece in _canonical_text(state):
        batch.append(piece)
        if len(batch) >= 1024:
            digest.update("".join(batch).encode("ascii"))
            batch.clear()
    digest.update("".join(batch).encode("ascii"))
    return digest.hexdigest()


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _dumps(value: Any) -> str:
    """`json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`."""
    return _ENCODER.encode(value)


def _canonical_text(state: DesiredState) -> Iterator[str]:
    """The text of `_dumps(_canonical(state))`, an entry at a time: 100,000 wallets are
    never held as one document (nor as one string) just to be hashed."""
    fixed = _fixed(state)
    sections: dict[str, tuple[Section, Mapping[str, Any]]] = {}
    for section in registry.sections():
        entries = _section_entries(state, section.name)
        if entries or section.digest_when_empty:
            sections[section.name] = (section, entries)
    yield "{"
    for index, key in enumerate(sorted({*fixed, *sections})):
        yield ("," if index else "") + _dumps(key) + ":"
        if key not in sections:
            yield _dumps(fixed[key])
            continue
        section, entries = sections[key]
        yield "{"
        for number, name in enumerate(sorted(entries)):
            item = _dumps(section.canonical(entries[name]))
            yield ("," if number else "") + _dumps(name) + ":" + item
        yield "}"
    yield "}"
