"""Meaning checks of the reference sections: `environments` and `lines_of_credit`.

Run by `build.py` before the resource sections (only when the backend declares the
section), so that `wallets.py` finds the checked entries in `Context.resolved`.
"""

from __future__ import annotations

from typing import Any

from voltage_iac.config.checks.registry import Context, Section, register
from voltage_iac.config.document import canonical_uuid
from voltage_iac.model import Environment, LineOfCredit, SourceRef

NETWORK_ALIASES = {"testnet": "testnet3"}


def _environments(ctx: Context) -> dict[str, Environment]:
    result: dict[str, Environment] = {}
    by_id: dict[str, str] = {}
    for name, entry in ctx.merged.entries("environments").items():
        value = entry.value
        if not isinstance(value, dict):
            continue
        env_id = canonical_uuid(value.get("id"))
        network = value.get("network")
        if env_id is not None and env_id in by_id:
            ctx.issues.at(
                entry.doc,
                (*entry.path, "id"),
                f"environment `{name}` has the same id as environment `{by_id[env_id]}`",
                "give each environment its own entry: one name per environment id",
            )
        if env_id is None or not isinstance(network, str):
            ctx.dropped = True
            continue
        by_id.setdefault(env_id, name)
        line, column = entry.doc.where(entry.path, key=True)
        result[name] = Environment(
            name=name,
            id=env_id,
            network=NETWORK_ALIASES.get(network, network),
            source=SourceRef(entry.doc.file, line, column),
        )
    return result


def _lines_of_credit(ctx: Context) -> dict[str, LineOfCredit]:
    result: dict[str, LineOfCredit] = {}
    for name, entry in ctx.merged.entries("lines_of_credit").items():
        loc_id = canonical_uuid(entry.value)
        if loc_id is None:
            ctx.dropped = True
            continue
        line, column = entry.doc.where(entry.path, key=True)
        result[name] = LineOfCredit(
            name=name, id=loc_id, source=SourceRef(entry.doc.file, line, column)
        )
    return result


def _canonical_environment(env: Any) -> dict[str, Any]:
    return {"id": env.id, "network": env.network}


def _canonical_line(line: Any) -> str:
    return str(line.id)


ENVIRONMENTS = register(
    Section(
        name="environments",
        label="environment",
        plural="environments",
        check=_environments,
        canonical=_canonical_environment,
        key_label="environment name",
        required_hints={
            "id": "give the environment's UUID (from the Voltage dashboard)",
            "network": "give the environment's network: mainnet, testnet3 or mutinynet",
        },
        required="add e.g. `environments: {staging: {id: <uuid>, network: mutinynet}}`",
        digest_when_empty=True,
    )
)

LINES_OF_CREDIT = register(
    Section(
        name="lines_of_credit",
        label="line of credit",
        plural="lines of credit",
        check=_lines_of_credit,
        canonical=_canonical_line,
        key_label="line of credit name",
        digest_when_empty=True,
    )
)
