"""How field values read in every human format (text and Markdown)."""

from __future__ import annotations

import json
from typing import Any

from voltage_iac.units import format_limit


def show_value(field: str, value: Any) -> str:
    if value is None:
        return "(none)"
    if field == "limit" and isinstance(value, int):
        return format_limit(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


ACTION_SYMBOL = {
    "create": "+",
    "update": "~",
    "replace": "-/+",
    "delete": "-",
    "no-op": " ",
}

ACTION_PHRASE = {
    "create": "will be created",
    "update": "will be updated in place",
    "replace": "must be replaced",
    "delete": "will be destroyed",
    "no-op": "is up to date",
}


def noun(kinds: set[str] | frozenset[str], plural: bool = True) -> str:
    """`wallets` when a list holds one kind only, else `resources`."""
    word = next(iter(kinds)) if len(kinds) == 1 else "resource"
    return word + "s" if plural else word
