"""Import: YAML adopting resources that exist but are not in the configuration.

Pure and kind-neutral: DesiredState + LiveState + environment name in, (YAML text, notes)
out. Each kind that can adopt live objects contributes its config sections
(`ResourceKind.import_sections`); this module checks the environment and writes the
document.
"""

from __future__ import annotations

from typing import Any

import yaml

from voltage_iac import kinds
from voltage_iac.errors import UsageError
from voltage_iac.model import DesiredState, LiveState


def import_wallets(
    desired: DesiredState, live: LiveState, environment: str
) -> tuple[str, list[str]]:
    """The YAML document adopting every importable unmanaged resource, and notes on skips."""
    if environment not in desired.environments:
        raise UsageError(
            f"unknown environment {environment!r}",
            hint="use one of: " + ", ".join(sorted(desired.environments)),
        )
    doc: dict[str, Any] = {"version": 1, "stack": desired.stack}
    notes: list[str] = []
    counts: list[str] = []
    for kind in kinds.registered():
        sections, kind_notes = kind.import_sections(desired, live, environment)
        notes.extend(kind_notes)
        for name, value in sections.items():
            if name == kind.section:
                counts.append(f"{len(value)} {kind.name}(s)")
            merged = doc.setdefault(name, {})
            merged.update(value)
    header = (
        f"# Imported by voltage-iac from environment {environment}: "
        f"{', '.join(counts) or 'nothing'}.\n"
        "# Each one is pinned by its id; review, then commit beside the configuration.\n"
    )
    text = header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    return text, notes
