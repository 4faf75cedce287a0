"""Which backends exist and what each supports, as data; opening one is a lookup here.

Imports nothing heavy: a backend's implementation (and httpx) is imported only when it is
opened. The config loader refuses sections and fields a backend does not declare
(`validate` exit 3), so no other module needs a `kind == ...` branch; the engine opens a
backend through `opener(name)`.

A declaration names, per resource kind, the configuration fields the backend can carry
out, and for every field or section it does not support, the reason shown to the user.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class BackendSpec:
    """What one backend supports."""

    name: str
    #: keys allowed under `provider:` (besides `kind`)
    provider_fields: frozenset[str]
    #: reference sections it uses (e.g. environments, lines_of_credit)
    sections: frozenset[str]
    #: resource kind -> the configuration fields of that kind it supports
    kinds: Mapping[str, frozenset[str]]
    #: `section`, `kind`, or `kind.field` -> why it is not supported (the fix)
    reasons: Mapping[str, str] = field(default_factory=dict)
    #: "module:attribute" of the function that opens it (imported lazily)
    opener_path: str = ""
    #: the client chooses ids (deterministic ids are possible)
    client_chosen_ids: bool = True
    #: it can make receive requests (invoices), so `verify` can run against it
    receives: bool = False

    def supports_kind(self, kind: str) -> bool:
        return kind in self.kinds

    def supports_field(self, kind: str, name: str) -> bool:
        return name in self.kinds.get(kind, frozenset())

    def reason(self, what: str) -> str:
        """Why `what` (a section, kind or `kind.field`) is not supported."""
        return self.reasons.get(what) or f"the {self.name} backend does not support it: remove it"


_SPECS: dict[str, BackendSpec] = {}


def register(spec: BackendSpec) -> BackendSpec:
    if spec.name in _SPECS:
        raise ValueError(f"backend {spec.name!r} is registered twice")
    _SPECS[spec.name] = spec
    return spec


def names() -> tuple[str, ...]:
    return tuple(sorted(_SPECS))


def spec(name: str) -> BackendSpec:
    """The declaration of backend `name` (KeyError if there is none)."""
    return _SPECS[name]


def opener(name: str) -> Any:
    """The function that opens backend `name` (its module is imported now)."""
    module, _, attribute = spec(name).opener_path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _frozen(data: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(data))


_WALLET_FIELDS_VOLTAGE = frozenset(
    {"name", "environment", "line_of_credit", "limit", "metadata", "policies", "protect", "id"}
    | {"ignore"}
)

_WEBHOOK_FIELDS_VOLTAGE = frozenset(
    {"name", "environment", "url", "events", "status", "secret", "protect", "ignore", "id"}
)

VOLTAGE = register(
    BackendSpec(
        name="voltage",
        provider_fields=frozenset({"organization_id", "api_url"}),
        sections=frozenset({"environments", "lines_of_credit"}),
        kinds=MappingProxyType(
            {"wallet": _WALLET_FIELDS_VOLTAGE, "webhook": _WEBHOOK_FIELDS_VOLTAGE}
        ),
        reasons=_frozen(
            {
                "provider.url": "`url` is for the lnbits provider; for Voltage, use `api_url` "
                "(or leave it out for https://voltageapi.com/v1)",
                "provider.network": "`network` is for the lnbits provider; on Voltage each "
                "environment names its network (`environments.<name>.network`): remove it",
            }
        ),
        opener_path="voltage_iac.providers.voltage:open_backend",
        client_chosen_ids=True,
        receives=True,
    )
)

LNBITS = register(
    BackendSpec(
        name="lnbits",
        provider_fields=frozenset({"url", "network"}),
        sections=frozenset(),
        kinds=MappingProxyType({"wallet": frozenset({"name", "protect", "ignore"})}),
        reasons=_frozen(
            {
                "environments": "LNbits has no environments or lines of credit: remove this "
                "section",
                "lines_of_credit": "LNbits has no environments or lines of credit: remove this "
                "section",
                "webhooks": "voltage-iac manages webhooks on the Voltage API only (LNbits "
                "webhooks belong to its extensions): remove this section",
                "provider.organization_id": "remove it; the lnbits provider takes `url`",
                "provider.api_url": "remove it; the lnbits provider takes `url`",
                "wallet.environment": "LNbits has no environments: remove it",
                "wallet.line_of_credit": "LNbits wallets are not credit-backed: remove it",
                "wallet.limit": "LNbits wallets have no credit limit: remove it",
                "wallet.metadata": "LNbits wallets carry no metadata, so it could never be "
                "applied: remove it",
                "wallet.policies": "LNbits has no wallet policies: remove them",
                "wallet.id": "LNbits chooses wallet ids itself; a wallet is matched by the "
                "ownership marker voltage-iac writes into its name (e.g. `Tips "
                "[iac:acme:tips]`): remove it",
            }
        ),
        opener_path="voltage_iac.providers.lnbits:open_backend",
        client_chosen_ids=False,
        receives=True,
    )
)
