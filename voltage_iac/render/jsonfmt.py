"""The JSON plan: versioned (`format_version`) and deterministic (sorted keys, no clock)."""

from __future__ import annotations

import json
from typing import Any

from voltage_iac.plan import Plan


def render_json(plan: Plan) -> str:
    return dump(plan.to_dict())


def dump(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
