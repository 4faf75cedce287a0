"""Step 3 of loading: the files of a configuration merged into one.

Flow: the `Doc`s that passed `schema.py` -> `merge` collects the single settings
(`version`, `stack`, `provider`, `guards`, `policies`: repeated only if equal), the
entries of every registered section (a name defined in two files is an error naming
both places) and the top-level `ignore` lists -> a `Merged`. Next: `build.py` runs the
meaning checks on it.

Sections come from the registry (`checks/registry.py`): a new section is merged without
an edit here.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, NamedTuple

from voltage_iac.config.checks import registry
from voltage_iac.config.document import Doc, Issues, Path_

SINGLE_KEYS = ("version", "stack", "provider", "guards", "policies")


class Entry(NamedTuple):
    """A value and where it comes from."""

    value: Any
    doc: Doc
    path: Path_


@dataclasses.dataclass
class Merged:
    """Every file's contribution, merged."""

    docs: list[Doc]
    single: dict[str, Entry] = dataclasses.field(default_factory=dict)
    #: section -> entry name -> the entry
    sections: dict[str, dict[str, Entry]] = dataclasses.field(default_factory=dict)
    #: section -> each place (one per file) the section appears, whatever its value
    places: dict[str, list[Entry]] = dataclasses.field(default_factory=dict)
    ignores: list[Entry] = dataclasses.field(default_factory=list)

    def entries(self, section: str) -> dict[str, Entry]:
        return self.sections.setdefault(section, {})


def where(entry: Entry, sub: Path_ = ()) -> str:
    """`file:line` of an entry's key (or of `sub` inside it), for messages."""
    line, _ = entry.doc.where((*entry.path, *sub), key=True)
    return f"{entry.doc.file}:{line}" if line is not None else entry.doc.file


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=repr) == json.dumps(
        b, sort_keys=True, default=repr
    )


def merge(docs: list[Doc], issues: Issues) -> Merged:
    merged = Merged(docs)
    labels = {s.name: s.label for s in registry.sections()}
    for name in labels:
        merged.sections[name] = {}
        merged.places[name] = []
    for doc in docs:
        for key, value in doc.data.items():
            if key in SINGLE_KEYS:
                _merge_single(merged, issues, doc, key, value)
            elif key in labels:
                merged.places[key].append(Entry(value, doc, (key,)))
                if isinstance(value, dict):
                    _merge_section(merged, issues, doc, key, labels[key], value)
            elif key == "ignore" and isinstance(value, list):
                merged.ignores.extend(
                    Entry(item, doc, ("ignore", index)) for index, item in enumerate(value)
                )
    return merged


def _merge_single(merged: Merged, issues: Issues, doc: Doc, key: str, value: Any) -> None:
    previous = merged.single.get(key)
    if previous is None:
        merged.single[key] = Entry(value, doc, (key,))
    elif not _same(previous.value, value):
        issues.at(
            doc,
            (key,),
            f"`{key}` differs from the one at {where(previous)}",
            f"every file that repeats `{key}` must say the same; or keep it in one file",
            key=True,
        )


def _merge_section(
    merged: Merged, issues: Issues, doc: Doc, section: str, label: str, value: dict[str, Any]
) -> None:
    known = merged.sections[section]
    for name, item in value.items():
        previous = known.get(name)
        if previous is not None:
            issues.at(
                doc,
                (section, name),
                f"{label} `{name}` is defined twice: here and at {where(previous)}",
                "keep one definition: names must be unique across all files",
                key=True,
            )
        else:
            known[name] = Entry(item, doc, (section, name))
