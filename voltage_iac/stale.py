"""Saved plans that cannot go stale silently: compare a reviewed plan with a fresh one.

Pure: the saved plan document (as written by `plan --out`) and a freshly computed Plan
in, the list of differences out. `apply --plan FILE` refuses (exit 5) unless the fresh
plan has the reviewed plan's checksum, and names every wallet and field that changed.
"""

from __future__ import annotations

from typing import Any

from voltage_iac.errors import UsageError
from voltage_iac.plan import PLAN_FORMAT_VERSION, Plan, WalletChange


def check_plan_document(doc: Any, source: str) -> dict[str, Any]:
    """Validate the shape of a saved plan file; raise UsageError if it is not one."""
    if not isinstance(doc, dict) or "format_version" not in doc:
        raise UsageError(f"{source} is not a voltage-iac plan file")
    if doc.get("format_version") != PLAN_FORMAT_VERSION:
        raise UsageError(
            f"{source} has plan format {doc.get('format_version')!r}; this version of "
            f"voltage-iac reads format {PLAN_FORMAT_VERSION}",
            hint="make the plan again with this version",
        )
    for name, kind in (
        ("checksum", str),
        ("config_digest", str),
        ("changes", list),
        ("owned_wallet_ids", list),
        ("targets", list),
    ):
        if not isinstance(doc.get(name), kind):
            raise UsageError(f"{source}: field {name!r} is missing or malformed")
    return doc


def stale_differences(saved: dict[str, Any], fresh: Plan) -> list[str]:
    """Why `fresh` differs from the reviewed plan `saved` (empty when they match)."""
    out: list[str] = []
    if saved["config_digest"] != fresh.config_digest:
        out.append("the configuration changed since the plan was made")
    # A key can have two changes (a leftover of an interrupted replacement to delete, and
    # its current wallet's change): pair them by key and by that distinction.
    fresh_by_key = {(c.key, c.superseded): c for c in fresh.changes}
    saved_keys = set()
    for old in saved["changes"]:
        key = old.get("key")
        pair = (key, bool(old.get("superseded")))
        saved_keys.add(pair)
        new = fresh_by_key.get(pair)
        if new is None or not new.is_change:
            out.append(f"{key}: no longer needs to be {old.get('action')}d")
        elif new.action.value != old.get("action"):
            out.append(f"{key}: now needs {new.action.value} instead of {old.get('action')}")
        before = old.get("live") or {}
        now = dict(new.live_snapshot) if new is not None and new.live_snapshot else {}
        live_changed = False
        for field in sorted(set(before) | set(now)):
            if before.get(field) != now.get(field):
                live_changed = True
                wallet = before.get("id") or now.get("id")
                out.append(
                    f"{key}: wallet {wallet} field {field} changed since the plan was made: "
                    f"{before.get(field)!r} -> {now.get(field)!r}"
                )
        if new is not None and new.is_change and not live_changed:
            out.extend(_field_differences(key, old.get("changes") or [], new))
    for change in fresh.actionable:
        if (change.key, change.superseded) not in saved_keys:
            out.append(
                f"{change.key}: now needs {change.action.value}, which the reviewed plan "
                "does not contain"
            )
    saved_owned = set(saved["owned_wallet_ids"])
    fresh_owned = set(fresh.owned_wallet_ids)
    for wallet_id in sorted(fresh_owned - saved_owned):
        out.append(f"owned wallet {wallet_id} appeared since the plan was made")
    for wallet_id in sorted(saved_owned - fresh_owned):
        out.append(f"owned wallet {wallet_id} disappeared since the plan was made")
    if not out and saved["checksum"] != fresh.checksum():
        out.append("the plan's content differs from the reviewed plan")
    return out


def _field_differences(key: str, reviewed: list[Any], fresh: WalletChange) -> list[str]:
    """The fields whose planned value differs from the reviewed plan's (same live wallet)."""
    old: dict[Any, Any] = {c.get("field"): c for c in reviewed if isinstance(c, dict)}
    new: dict[Any, Any] = {c.field: c.to_dict() for c in fresh.fields}
    out = []
    for field in sorted(set(old) | set(new), key=str):
        if old.get(field) == new.get(field):
            continue
        was = (old.get(field) or {}).get("after")
        now = (new.get(field) or {}).get("after")
        out.append(f"{key}: field {field} is now planned as {now!r}, the reviewed plan had {was!r}")
    return out
