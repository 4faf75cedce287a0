"""Checks every resource section makes of its entries in the same way.

Used by the section checkers (`wallets.py`, `webhooks.py`): a reference to an entry of
another section, display names unique within an environment and free of the ownership
marker, a pinned id that no other entry pins, the generic `protect` and `ignore`
fields, and where an entry stands in its file. Each reports in the section's own words
(`label`: "wallet", "webhook").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from voltage_iac.config.checks.registry import Context
from voltage_iac.config.checks.registry import section as registered
from voltage_iac.config.document import canonical_uuid, did_you_mean
from voltage_iac.config.merge import Entry, where
from voltage_iac.kinds.naming import normal_name
from voltage_iac.model import SourceRef

#: a section checker's display names seen so far: (environment, normal name) -> (key, entry)
NamesSeen = dict[tuple[str | None, str], tuple[str, Entry]]


def mappings(ctx: Context, section_name: str) -> Iterator[tuple[str, Entry]]:
    """(key, entry) of each entry of the section that is a mapping; any other is left
    out of the state (the schema reported it)."""
    for key, entry in ctx.merged.entries(section_name).items():
        if isinstance(entry.value, dict):
            yield key, entry
        else:
            ctx.dropped = True


def reference(ctx: Context, entry: Entry, field_name: str, section_name: str) -> Any:
    """The checked entry of `section_name` that the entry's `field_name` names, or None
    (with an issue when no such entry is defined; one that is defined but invalid is
    reported by its own check)."""
    value = entry.value.get(field_name)
    if not isinstance(value, str):
        return None
    resolved = ctx.resolved.get(section_name, {})
    if value in resolved:
        return resolved[value]
    names = list(ctx.merged.entries(section_name))
    if value not in names:
        target = registered(section_name)
        label = target.label if target else section_name
        plural = target.plural if target else section_name
        hint = did_you_mean(value, names, plural)
        if not names:
            hint = f"no {plural} are defined: add one under `{section_name}:`"
        ctx.issues.at(entry.doc, (*entry.path, field_name), f"unknown {label} `{value}`", hint)
    return None


def unique_name(
    ctx: Context,
    entry: Entry,
    key: str,
    label: str,
    name: str,
    environment: str | None,
    seen: NamesSeen,
) -> bool:
    """False (with an issue) when an earlier entry of the section has the same display
    name in `environment` (None: the backend has no environments)."""
    normal = normal_name(name)
    other = seen.get((environment, normal))
    if other is None:
        seen[(environment, normal)] = (key, entry)
        return True
    within = f" in environment `{environment}`" if environment is not None else ""
    ctx.issues.at(
        entry.doc,
        (*entry.path, "name"),
        f"display name `{name}` is already used by {label} `{other[0]}`{within} "
        f"({where(other[1], ('name',))})",
        "display names must be unique within an environment, ignoring case, "
        "spacing and Unicode form: rename one of them",
    )
    return False


def marker_free(
    ctx: Context, entry: Entry, name: str, marker: str, names_of: str, example: str
) -> bool:
    """False (with an issue) when the display name holds `marker`, which starts the
    ownership marker voltage-iac adds to the names of `names_of`."""
    if marker not in name:
        return True
    ctx.issues.at(
        entry.doc,
        (*entry.path, "name"),
        f"the display name `{name}` contains `{marker}`, which starts the ownership "
        f"marker voltage-iac adds to {names_of}",
        f"write the display name only (e.g. `{example}`, not `{example} [iac:stack:key]`); "
        "voltage-iac adds the marker itself",
    )
    return False


def pin(
    ctx: Context, entry: Entry, key: str, label: str, pins: dict[str, str]
) -> tuple[str | None, bool]:
    """The id the entry pins (canonical) and whether it may: a UUID (the schema reports
    any other value) that no earlier entry pins (an issue otherwise)."""
    pinned_id = canonical_uuid(entry.value["id"])
    if pinned_id is None:
        return None, False
    if pinned_id in pins:
        ctx.issues.at(
            entry.doc,
            (*entry.path, "id"),
            f"{label} id {pinned_id} is already pinned by {label} `{pins[pinned_id]}`",
            f"a live {label} can belong to one entry only: remove one of the ids",
        )
        return pinned_id, False
    pins[pinned_id] = key
    return pinned_id, True


def protect_and_ignore(entry: Entry) -> tuple[bool, tuple[str, ...]] | None:
    """The entry's `protect` and `ignore` patterns; None when either is of the wrong
    type (reported by the schema)."""
    protect = entry.value.get("protect", False)
    ignore = entry.value.get("ignore", [])
    if not isinstance(protect, bool):
        return None
    if not isinstance(ignore, list) or not all(isinstance(i, str) for i in ignore):
        return None
    return protect, tuple(ignore)


def source(entry: Entry) -> SourceRef:
    """Where the entry's key stands: file, line and column."""
    line, column = entry.doc.where(entry.path, key=True)
    return SourceRef(entry.doc.file, line, column)
