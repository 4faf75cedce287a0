"""The model: plain frozen data that flows between config, providers, diff and apply.

Imports nothing of the package. `DesiredState` comes from the config loader,
`LiveState` from a provider's read; the pure diff turns the pair into a plan.
Nothing here does I/O.

Conventions:
- Networks are kept in the request spelling (`mainnet`, `testnet3`, `mutinynet`) on the
  desired side and in the response spelling (`mainnet`, `testnet`, `signet`, `mutinynet`,
  `none`) on the live side; compare with `same_network`.
- Limits are integers in the line of credit's base unit (msats for BTC lines).
- Metadata on the desired side is the user's own; ownership labels are added by the
  identity module, and stripped from live metadata before comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

REQUEST_NETWORKS = ("mainnet", "testnet3", "mutinynet")
RESPONSE_NETWORKS = ("mainnet", "testnet", "signet", "mutinynet", "none")


def network_response_name(network: str) -> str:
    """Map a request network name to the name the API uses in responses."""
    return "testnet" if network == "testnet3" else network


def network_request_name(network: str) -> str:
    """Map a response network name back to the request spelling."""
    return "testnet3" if network == "testnet" else network


def same_network(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is b
    return network_response_name(a) == network_response_name(b)


def frozen_map(data: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only copy of a mapping (sorted by key, so iteration is deterministic)."""
    return MappingProxyType(dict(sorted((data or {}).items())))


@dataclass(frozen=True)
class SourceRef:
    """Where a value was written in the configuration (for error messages)."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}" + (f":{self.column}" if self.column else "")


@dataclass(frozen=True)
class ProcessingFee:
    send_basis_points: int
    receive_basis_points: int

    def to_dict(self) -> dict[str, int]:
        return {
            "send_basis_points": self.send_basis_points,
            "receive_basis_points": self.receive_basis_points,
        }


POLICY_FIELDS = (
    "max_payment_size_sats",
    "transactions_per_minute",
    "send_volume_limit_sats",
    "template_id",
    "ofac_compliant",
    "processing_fee",
)


@dataclass(frozen=True)
class Policies:
    """A wallet's policies as the config states them; `None` means "no such policy".

    `ofac_compliant=False` and "no OFAC policy" are the same thing.
    """

    max_payment_size_sats: int | None = None
    transactions_per_minute: int | None = None
    send_volume_limit_sats: int | None = None
    template_id: str | None = None
    ofac_compliant: bool = False
    processing_fee: ProcessingFee | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every policy field, `None` where unset (stable order)."""
        return {
            "max_payment_size_sats": self.max_payment_size_sats,
            "transactions_per_minute": self.transactions_per_minute,
            "send_volume_limit_sats": self.send_volume_limit_sats,
            "template_id": self.template_id,
            "ofac_compliant": self.ofac_compliant,
            "processing_fee": self.processing_fee.to_dict() if self.processing_fee else None,
        }

    def update_body(self, before: Policies | None) -> dict[str, Any]:
        """The PATCH body that turns `before` into `self`: changed fields only,
        `null` to remove a policy. Empty when nothing differs."""
        old = (before or Policies()).to_dict()
        body: dict[str, Any] = {}
        for name, value in self.to_dict().items():
            if old[name] != value:
                if name == "ofac_compliant" and not value:
                    body[name] = None
                else:
                    body[name] = value
        return body


@dataclass(frozen=True)
class Environment:
    name: str
    id: str
    network: str  # request spelling
    source: SourceRef | None = field(default=None, compare=False)


@dataclass(frozen=True)
class LineOfCredit:
    name: str
    id: str
    source: SourceRef | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DesiredWallet:
    """One wallet as the configuration wants it.

    Fields a backend does not have are `None` (the config loader refuses them for that
    backend). `policies=None` means the config does not manage policies for this wallet.
    """

    key: str
    name: str
    environment: str  # environment name in the config
    environment_id: str | None = None
    network: str | None = None  # request spelling
    line_of_credit: str | None = None  # line-of-credit name in the config
    line_of_credit_id: str | None = None
    limit: int | None = None
    metadata: Mapping[str, str] = field(default_factory=lambda: frozen_map({}))
    policies: Policies | None = None
    protect: bool = False
    pinned_id: str | None = None
    ignore: tuple[str, ...] = ()  # field patterns drift reports ignore (e.g. "metadata.*")
    source: SourceRef | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Guards:
    """Thresholds for the mass-change and limit-increase guards (configurable in YAML)."""

    mass_change_share: float = 0.30  # replacements + deletes above this share of managed
    mass_change_min_wallets: int = 10  # ... only once an environment manages this many
    limit_increase_factor: float = 10.0  # raising a limit more than this many times


@dataclass(frozen=True)
class DesiredState:
    """The whole configuration after loading, interpolation and validation."""

    stack: str
    organization_id: str
    provider_kind: str = "voltage"
    api_url: str | None = None
    environments: Mapping[str, Environment] = field(default_factory=lambda: frozen_map({}))
    lines_of_credit: Mapping[str, LineOfCredit] = field(default_factory=lambda: frozen_map({}))
    wallets: Mapping[str, DesiredWallet] = field(default_factory=lambda: frozen_map({}))
    guards: Guards = field(default_factory=Guards)
    ignore: tuple[str, ...] = ()  # global drift ignore patterns ("wallet-key:field-pattern")
    provider_options: Mapping[str, Any] = field(default_factory=lambda: frozen_map({}))
    files: tuple[str, ...] = ()
    digest: str = ""  # sha256 over the canonical desired state (see config.py)


@dataclass(frozen=True)
class Ownership:
    """Who manages a live wallet, as the provider reads it from the backend."""

    stack: str
    key: str
    generation: int = 0


@dataclass(frozen=True)
class LiveWallet:
    """One wallet as the backend reports it, reduced to the fields we manage.

    `owner` is filled in by the provider (from metadata labels, or however the backend
    records ownership); `metadata` is the user part only, labels removed.
    `policies` is `None` when they were not read.
    """

    id: str
    name: str
    environment_id: str | None = None
    network: str | None = None  # response spelling
    line_of_credit_id: str | None = None
    limit: int | None = None
    metadata: Mapping[str, str] = field(default_factory=lambda: frozen_map({}))
    active: bool = True
    deleted_at: str | None = None
    deletion_failed_at: str | None = None
    owner: Ownership | None = None
    policies: Policies | None = None
    has_funds: bool = False


@dataclass(frozen=True)
class LineOfCreditSummary:
    id: str
    environment_id: str
    network: str  # response spelling
    limit: int
    allocated_limit: int
    currency: str = "btc"
    disabled: bool = False

    @property
    def available(self) -> int:
        return max(0, self.limit - self.allocated_limit)


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, as data the pure core can branch on without naming it."""

    client_chosen_ids: bool = True  # the client picks wallet ids (deterministic ids)
    immutable_fields: tuple[str, ...] = (
        "environment",
        "network",
        "line_of_credit",
        "limit",
        "metadata",
    )
    mutable_fields: tuple[str, ...] = ("name", "policies")


@dataclass(frozen=True)
class LiveState:
    """Everything read from the backend for one plan.

    `wallets` holds every wallet in the configured environments, active and inactive;
    `environments_read` names the environments whose listing completed (a plan is only
    made from complete reads).
    """

    wallets: tuple[LiveWallet, ...] = ()
    lines_of_credit: Mapping[str, LineOfCreditSummary] = field(
        default_factory=lambda: frozen_map({})
    )
    environments_read: tuple[str, ...] = ()
    capabilities: Capabilities = field(default_factory=Capabilities)
