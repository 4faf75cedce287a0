"""Meaning checks of `policies:` (the Rego policies evaluated on every plan and drift
report). Run by `build.py`. The schema has checked the shape; here every path is
resolved against the directory of the file that names it and must exist. Reading and
compiling the policies is `voltage_iac.policy`'s (at plan time, so `validate` needs no
Rego engine).

Two spellings: a plain list of paths, or an object with `paths`, `namespace`, `data`
and `timeout` (see docs/policy.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from voltage_iac.config.document import Issues, Path_
from voltage_iac.config.merge import Entry, Merged
from voltage_iac.model import PolicySettings


def check_policies(merged: Merged, issues: Issues) -> PolicySettings | None:
    """The policy settings with paths resolved; None when a path is wrong (reported)."""
    entry = merged.single.get("policies")
    if entry is None:
        return PolicySettings()
    value = entry.value
    defaults = PolicySettings()
    options: dict[str, Any] = value if isinstance(value, dict) else {}
    paths_at: Path_ = (*entry.path, "paths") if isinstance(value, dict) else entry.path
    raw_paths = options.get("paths") if isinstance(value, dict) else value
    if not isinstance(raw_paths, list):
        return None  # reported by the schema
    base = Path(entry.doc.file).parent
    ok = True
    paths = []
    for index, item in enumerate(raw_paths):
        resolved = _resolve(entry, base, item, (*paths_at, index), issues, policy=True)
        ok = ok and resolved is not None
        paths.append(resolved or "")
    data = []
    for index, item in enumerate(options.get("data") or []):
        resolved = _resolve(entry, base, item, (*entry.path, "data", index), issues)
        ok = ok and resolved is not None
        data.append(resolved or "")
    if not ok:
        return None
    namespace = options.get("namespace", defaults.namespace)
    timeout = options.get("timeout", defaults.timeout)
    if not isinstance(namespace, str) or isinstance(timeout, bool):
        return None
    if not isinstance(timeout, (int, float)):
        return None
    return PolicySettings(
        paths=tuple(paths), namespace=namespace, data=tuple(data), timeout=float(timeout)
    )


def _resolve(
    entry: Entry, base: Path, item: Any, where: Path_, issues: Issues, *, policy: bool = False
) -> str | None:
    if not isinstance(item, str):
        return None  # reported by the schema
    path = Path(item) if Path(item).is_absolute() else base / item
    if not path.exists():
        what = "policy file or directory" if policy else "data file"
        issues.at(
            entry.doc,
            where,
            f"no such {what}: {item} (looked for {path})",
            "paths are relative to the configuration file that names them",
        )
        return None
    if policy and path.is_file() and path.suffix != ".rego":
        issues.at(
            entry.doc,
            where,
            f"{item} is not a .rego file",
            "name .rego files, or directories holding them",
        )
        return None
    if not policy and path.suffix not in (".json", ".yaml", ".yml"):
        issues.at(entry.doc, where, f"{item} is not a .json, .yaml or .yml file")
        return None
    return str(path)
