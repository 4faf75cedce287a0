"""Meaning checks of the top-level settings that are not sections: `guards` and the
top-level drift `ignore` list. Run by `build.py` after the sections."""

from __future__ import annotations

import math
from typing import Any

from voltage_iac.config.checks.registry import add_hints
from voltage_iac.config.document import Issues, is_integer, is_number
from voltage_iac.config.merge import Merged
from voltage_iac.model import Guards

_HINTS = {
    "mass_change_share": "a share between 0 (exclusive) and 1, e.g. 0.3 for 30%",
    "mass_change_min_wallets": "a whole number of wallets, 1 or more",
    "limit_increase_factor": "a factor above 1, e.g. 10",
}
add_hints(ranges=_HINTS)


def check_guards(merged: Merged, issues: Issues) -> Guards | None:
    """The guards with defaults filled in; None when a value is wrong (reported)."""
    entry = merged.single.get("guards")
    if entry is None:
        return Guards()
    if not isinstance(entry.value, dict):
        return None
    defaults = Guards()
    values: dict[str, Any] = {}
    ok = True
    for field_name in ("mass_change_share", "limit_increase_factor"):
        item = entry.value.get(field_name, getattr(defaults, field_name))
        if not is_number(item):
            ok = False
        elif not math.isfinite(item):
            issues.at(
                entry.doc,
                (*entry.path, field_name),
                "must be a finite number, not " + entry.doc.show((*entry.path, field_name), item),
                _HINTS[field_name],
            )
            ok = False
        else:
            values[field_name] = float(item)
    count = entry.value.get("mass_change_min_wallets", defaults.mass_change_min_wallets)
    if not is_integer(count):
        ok = False
    values["mass_change_min_wallets"] = count
    return Guards(**values) if ok else None


def check_ignore(merged: Merged) -> tuple[str, ...] | None:
    """The top-level ignore patterns of every file; None when one is not text (reported)."""
    patterns = [entry.value for entry in merged.ignores if isinstance(entry.value, str)]
    if len(patterns) != len(merged.ignores):
        return None
    return tuple(dict.fromkeys(patterns))
