"""Import for the wallet kind: config entries adopting wallets that exist but are unmanaged.

Pure: DesiredState + LiveState + environment name in, (config sections, notes) out.
Each imported wallet is pinned by its existing id (`id:`): metadata cannot change after
creation, so a pinned id is how a config adopts a wallet it did not create. Everything
else is copied as it is live, so that a plan right after import shows no changes.
"""

from __future__ import annotations

from typing import Any

from voltage_iac.kinds.naming import import_key
from voltage_iac.kinds.naming import normal_name as _norm
from voltage_iac.model import DesiredState, LiveState, same_network


def import_sections(
    desired: DesiredState, live: LiveState, environment: str
) -> tuple[dict[str, Any], list[str]]:
    """The config sections adopting every importable unmanaged wallet, and notes on skips."""
    env = desired.environments[environment]
    pinned = {w.pinned_id for w in desired.wallets.values() if w.pinned_id}
    taken_keys = set(desired.wallets)
    taken_names = {_norm(w.name) for w in desired.wallets.values() if w.environment == environment}
    loc_names = {loc.id: name for name, loc in desired.lines_of_credit.items()}
    new_locs: dict[str, str] = {}
    wallets: dict[str, Any] = {}
    notes: list[str] = []

    candidates = sorted(
        (w for w in live.wallets if w.active and w.environment_id == env.id and w.id not in pinned),
        key=lambda w: (w.name, w.id),
    )
    for wallet in candidates:
        if wallet.owner is not None:
            if wallet.owner.stack == desired.stack:
                continue  # already managed by this stack
            notes.append(
                f"skipped {wallet.name} ({wallet.id}): managed by stack {wallet.owner.stack}"
            )
            continue
        reason = _unimportable(wallet, env.network, taken_names)
        if reason:
            notes.append(f"skipped {wallet.name} ({wallet.id}): {reason}")
            continue
        assert wallet.line_of_credit_id is not None
        loc_name = loc_names.get(wallet.line_of_credit_id)
        if loc_name is None:
            loc_name = new_locs.get(wallet.line_of_credit_id)
        if loc_name is None:
            loc_name = f"imported-{wallet.line_of_credit_id[:8]}"
            new_locs[wallet.line_of_credit_id] = loc_name
        key = import_key(wallet.name, taken_keys, "wallet")
        taken_keys.add(key)
        taken_names.add(_norm(wallet.name))
        entry: dict[str, Any] = {
            "id": wallet.id,
            "name": wallet.name,
            "environment": environment,
            "line_of_credit": loc_name,
            "limit": wallet.limit,
        }
        if wallet.metadata:
            entry["metadata"] = dict(wallet.metadata)
        wallets[key] = entry

    sections: dict[str, Any] = {}
    if new_locs:
        sections["lines_of_credit"] = {name: loc_id for loc_id, name in sorted(new_locs.items())}
    sections["wallets"] = wallets
    return sections, notes


def _unimportable(wallet: Any, network: str, taken_names: set[str]) -> str | None:
    if wallet.limit is None or wallet.line_of_credit_id is None:
        return "not backed by a line of credit (the configuration needs both a limit and one)"
    if not same_network(network, wallet.network):
        return f"on network {wallet.network}, not the environment's {network}"
    if not 3 <= len(wallet.name.strip()) <= 256:
        return "its name is not 3-256 characters; rename it first"
    if _norm(wallet.name) in taken_names:
        return "its name is already used by a configured wallet in this environment"
    return None
