"""Meaning checks of the `wallets` section (resource kind `wallet`).

Run by `build.py` after the reference sections. The backend's declaration
(`providers/registry.py`) decides what applies: `build.py` has already refused every
field the backend does not support; here a field of `REQUIRED_WHERE_SUPPORTED` is
required when the backend supports it, references and values are checked only for the
fields the backend supports, and the ownership marker is refused in names when the
backend matches wallets by it (it chooses the ids itself).

The only config module besides `build.py` that builds wallet model types.
"""

from __future__ import annotations

import difflib
import unicodedata
from typing import Any

from voltage_iac.config.checks import entries
from voltage_iac.config.checks.registry import Context, Section, plain_name, register
from voltage_iac.config.document import Path_, canonical_uuid, is_integer
from voltage_iac.config.merge import Entry
from voltage_iac.config.schema import entry_fields
from voltage_iac.identity import LABEL_PREFIX, is_reserved_label
from voltage_iac.kinds.wallet import DesiredWallet, Policies, ProcessingFee
from voltage_iac.model import U64_MAX, frozen_map
from voltage_iac.units import AmountError, parse_limit

KIND = "wallet"

#: fields required wherever the backend supports them, with the hint when one is missing
REQUIRED_WHERE_SUPPORTED = {
    "environment": "name one of `environments`, e.g. `environment: staging`",
    "line_of_credit": "name one of `lines_of_credit`, e.g. `line_of_credit: main`",
    "limit": "give the credit limit, e.g. `limit: 0.001 btc` or msats as an integer",
}
#: fields that name an entry of a reference section
REFERENCES = {"environment": "environments", "line_of_credit": "lines_of_credit"}
LNBITS_MARKER_PREFIX = "[iac:"  # starts the ownership marker in a wallet name
_MARKED = "LNbits wallet names"  # the names that marker goes into


def _wallet_fields() -> frozenset[str]:
    return entry_fields("wallets")


def _misspelt(field_name: str, wallet: dict[str, Any]) -> bool:
    """True when an unknown field of the wallet looks like `field_name` (already reported
    as a typo with a did-you-mean hint, so "missing" would only repeat it)."""
    known = _wallet_fields()
    unknown = [k for k in wallet if k not in known]
    return bool(difflib.get_close_matches(field_name, [k.lower() for k in unknown], cutoff=0.6))


def _normal_meta_key(key: str) -> str:
    return unicodedata.normalize("NFC", key).casefold()


def check(ctx: Context) -> dict[str, DesiredWallet]:
    backend = ctx.backend
    fields = _wallet_fields()
    supports = {name for name in fields if backend.supports_field(KIND, name)}
    unsupported = fields - supports
    references = [(f, section) for f, section in REFERENCES.items() if f in supports]
    parse_limits = "limit" in supports
    read_metadata = "metadata" in supports
    read_policies = "policies" in supports
    pin_ids = "id" in supports
    required = [(f, hint) for f, hint in REQUIRED_WHERE_SUPPORTED.items() if f in supports]
    by_environment = "environment" in supports
    # A backend that chooses the ids itself is matched by the ownership marker
    # voltage-iac writes into the wallet's name; a name must not contain one already.
    marker_in_names = not backend.client_chosen_ids
    result: dict[str, DesiredWallet] = {}
    names_seen: entries.NamesSeen = {}
    pinned: dict[str, str] = {}
    for key, entry in entries.mappings(ctx, "wallets"):
        wallet = entry.value
        doc, path = entry.doc, entry.path
        ok = unsupported.isdisjoint(wallet)  # the others are refused by build.py
        name = _wallet_name(ctx, entry, wallet)
        for field_name, hint in required:
            if field_name not in wallet and not _misspelt(field_name, wallet):
                ctx.issues.at(doc, path, f"wallet `{key}` has no `{field_name}`", hint, key=True)
                ok = False
        if marker_in_names and name is not None:
            ok = entries.marker_free(ctx, entry, name, LNBITS_MARKER_PREFIX, _MARKED, "Tips") and ok
        group: str | None = None
        if by_environment:
            env_name = wallet.get("environment")
            group = env_name if isinstance(env_name, str) else ""
        if name is not None:
            ok = entries.unique_name(ctx, entry, key, "wallet", name, group, names_seen) and ok
        else:
            ok = False
        values: dict[str, Any] = {}
        for field_name, section in references:
            values[field_name] = found = entries.reference(ctx, entry, field_name, section)
            ok = ok and found is not None
        if parse_limits:
            values["limit"] = _limit(ctx, entry)
        metadata = _metadata(ctx, entry) if read_metadata else {}
        policies = _policies(entry) if read_policies else None
        pinned_id: str | None = None
        if pin_ids and "id" in wallet:
            pinned_id, pinnable = entries.pin(ctx, entry, key, "wallet", pinned)
            ok = ok and pinnable
        for field_name, _ in required:
            ok = ok and values.get(field_name) is not None
        ok = ok and ("policies" not in wallet or not read_policies or policies is not None)
        generic = entries.protect_and_ignore(entry)
        if not ok or name is None or generic is None:
            ctx.dropped = True
            continue
        protect, ignore = generic
        env = values.get("environment")
        line = values.get("line_of_credit")
        result[key] = DesiredWallet(
            key=key,
            name=name,
            environment=env.name if env else "default",
            environment_id=env.id if env else None,
            network=env.network if env else None,
            line_of_credit=line.name if line else None,
            line_of_credit_id=line.id if line else None,
            limit=values.get("limit"),
            metadata=frozen_map(metadata),
            policies=policies,
            protect=protect,
            pinned_id=pinned_id,
            ignore=ignore,
            source=entries.source(entry),
        )
    return dict(sorted(result.items()))


def _wallet_name(ctx: Context, entry: Entry, wallet: dict[str, Any]) -> str | None:
    path = (*entry.path, "name")
    name = plain_name(ctx, entry, wallet.get("name"))
    if name is None:
        return None
    if not 3 <= len(name) <= 256:
        ctx.issues.at(
            entry.doc,
            path,
            f"the display name is {len(name)} characters long (after trimming spaces); "
            "names are 3-256 characters",
            "lengthen it" if len(name) < 3 else "shorten it",
        )
        return None
    return name


def _limit(ctx: Context, entry: Entry) -> int | None:
    if "limit" not in entry.value:
        return None
    path = (*entry.path, "limit")
    try:
        return parse_limit(entry.value["limit"])
    except AmountError as exc:
        message = str(exc)
        if entry.doc.interpolated.get(path):
            message = f"cannot read {entry.doc.show(path, None)} as a limit"
        ctx.issues.at(
            entry.doc,
            path,
            message,
            "write a whole number of msats (e.g. 100000000) or a text with a unit: "
            'msat, sat or btc (e.g. "50000 sat", "0.001 btc")',
        )
        return None


def _metadata(ctx: Context, entry: Entry) -> dict[str, str]:
    metadata = entry.value.get("metadata")
    if not isinstance(metadata, dict):
        return {}
    result: dict[str, str] = {}
    seen: dict[str, str] = {}
    for key, value in metadata.items():
        path = (*entry.path, "metadata", key)
        if is_reserved_label(key):
            ctx.issues.at(
                entry.doc,
                path,
                f"metadata key `{key}` uses the prefix `{LABEL_PREFIX}`, which voltage-iac "
                "reserves for its ownership labels",
                "rename the key",
                key=True,
            )
            continue
        normal = _normal_meta_key(key)
        if normal in seen:
            ctx.issues.at(
                entry.doc,
                path,
                f"metadata key `{key}` collides with `{seen[normal]}` (keys must differ by "
                "more than letter case or Unicode form)",
                "rename or remove one of them",
                key=True,
            )
            continue
        seen[normal] = key
        if isinstance(value, str):
            result[key] = value
    return result


def _policies(entry: Entry) -> Policies | None:
    value = entry.value.get("policies")
    if not isinstance(value, dict):
        return None

    def number(name: str) -> int | None:
        item = value.get(name)
        return item if is_integer(item) else None

    fee = value.get("processing_fee")
    processing_fee = None
    if isinstance(fee, dict):
        send, receive = fee.get("send_basis_points"), fee.get("receive_basis_points")
        if isinstance(send, int) and isinstance(receive, int):
            processing_fee = ProcessingFee(send, receive)
    ofac = value.get("ofac_compliant", False)
    return Policies(
        max_payment_size_sats=number("max_payment_size_sats"),
        transactions_per_minute=number("transactions_per_minute"),
        send_volume_limit_sats=number("send_volume_limit_sats"),
        template_id=canonical_uuid(value.get("template_id")),
        ofac_compliant=ofac if isinstance(ofac, bool) else False,
        processing_fee=processing_fee,
    )


def _canonical(w: DesiredWallet) -> dict[str, Any]:
    return {
        "name": w.name,
        "environment": w.environment,
        "environment_id": w.environment_id,
        "network": w.network,
        "line_of_credit": w.line_of_credit,
        "line_of_credit_id": w.line_of_credit_id,
        "limit": w.limit,
        "metadata": dict(w.metadata),
        "policies": w.policies.to_dict() if w.policies is not None else None,
        "protect": w.protect,
        "pinned_id": w.pinned_id,
        "ignore": list(w.ignore),
    }


def _explains(inner: Path_, validator: str) -> bool:
    if inner[:1] == ("limit",):
        return True  # limits are read by units.parse_limit, which explains itself
    # names are checked after trimming, with the wallet's other name rules
    return inner == ("name",) and validator in ("minLength", "maxLength")


_POLICY_HINT = f"policy values are whole numbers from 1 to {U64_MAX}"
_FEE_HINT = "give both send_basis_points and receive_basis_points (0-10000)"

WALLETS = register(
    Section(
        name="wallets",
        label="wallet",
        plural="wallets",
        check=check,
        canonical=_canonical,
        kind=KIND,
        key_label="wallet key",
        required_hints={
            "name": "give the wallet a display name, e.g. `name: Payouts EU`",
            "send_basis_points": _FEE_HINT,
            "receive_basis_points": _FEE_HINT,
        },
        range_hints={
            "send_basis_points": "basis points run from 0 (no fee) to 10000 (100%); 100 is 1%",
            "receive_basis_points": "basis points run from 0 (no fee) to 10000 (100%); 100 is 1%",
            "max_payment_size_sats": _POLICY_HINT,
            "transactions_per_minute": _POLICY_HINT,
            "send_volume_limit_sats": _POLICY_HINT,
        },
        explains=_explains,
        digest_when_empty=True,
    )
)
