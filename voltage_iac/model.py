"""The model: plain frozen data shared by every resource kind and every backend.

Imports nothing of the package. `DesiredState` comes from the config loader, `LiveState`
from a backend's read; the pure diff turns the pair into a plan. Nothing here does I/O.

What is here is kind-neutral: references (environments, lines of credit), ownership,
guards, and the two states, which hold each kind's resources under the kind's name
(`resources["wallet"]`). A kind's own desired and live types live with the kind
(`voltage_iac.kinds.wallet`).

Conventions:
- Networks are kept in the request spelling (`mainnet`, `testnet3`, `mutinynet`) on the
  desired side and in the response spelling (`mainnet`, `testnet`, `signet`, `mutinynet`,
  `none`) on the live side; compare with `same_network`.
- Ids are canonical lower-case UUID strings (`canonical_uuid`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

REQUEST_NETWORKS = ("mainnet", "testnet3", "mutinynet")
RESPONSE_NETWORKS = ("mainnet", "testnet", "signet", "mutinynet", "none")

#: The largest unsigned 64-bit integer (the API's limit and policy values are u64).
U64_MAX = 2**64 - 1


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


def canonical_uuid(value: Any) -> str | None:
    """The canonical (lower-case, hyphenated) spelling of a UUID, or None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


EMPTY: Mapping[str, Any] = MappingProxyType({})


def frozen_map(data: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only copy of a mapping (sorted by key, so iteration is deterministic)."""
    return MappingProxyType(dict(sorted((data or {}).items())))


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Ownership:
    """Who manages a live resource, as the backend records it."""

    stack: str
    key: str
    generation: int = 0


class DesiredResource(Protocol):
    """What the generic diff reads of any kind's desired object."""

    @property
    def key(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def environment(self) -> str: ...
    @property
    def protect(self) -> bool: ...
    @property
    def pinned_id(self) -> str | None: ...
    @property
    def ignore(self) -> tuple[str, ...]: ...


class LiveResource(Protocol):
    """What the generic diff reads of any kind's live object."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def environment_id(self) -> str | None: ...
    @property
    def active(self) -> bool: ...
    @property
    def owner(self) -> Ownership | None: ...
    @property
    def deletion_failed_at(self) -> str | None: ...


@dataclass(frozen=True)
class Guards:
    """Thresholds for the mass-change and limit-increase guards (configurable in YAML)."""

    mass_change_share: float = 0.30  # replacements + deletes above this share of managed
    mass_change_min_wallets: int = 10  # ... only once an environment manages this many
    limit_increase_factor: float = 10.0  # raising a limit more than this many times


@dataclass(frozen=True)
class PolicySettings:
    """The Rego policies of `policies:` (paths resolved against the file naming them)."""

    paths: tuple[str, ...] = ()  # .rego files or directories of them
    namespace: str = "main"  # the package whose deny/warn/violation rules are read
    data: tuple[str, ...] = ()  # JSON/YAML files read as `data`
    timeout: float = 10.0  # seconds one evaluation may take


@dataclass(frozen=True)
class DesiredState:
    """The whole configuration after loading, interpolation and validation.

    `resources` maps a kind's name to its desired objects by key (sorted)."""

    stack: str
    organization_id: str
    provider_kind: str = "voltage"
    api_url: str | None = None
    environments: Mapping[str, Environment] = field(default_factory=lambda: EMPTY)
    lines_of_credit: Mapping[str, LineOfCredit] = field(default_factory=lambda: EMPTY)
    resources: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: EMPTY)
    guards: Guards = field(default_factory=Guards)
    ignore: tuple[str, ...] = ()  # global drift ignore patterns ("key:field-pattern")
    provider_options: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    files: tuple[str, ...] = ()
    policies: PolicySettings = field(default_factory=PolicySettings)
    digest: str = ""  # sha256 over the canonical desired state (see config)

    def of(self, kind: str) -> Mapping[str, Any]:
        """The desired objects of one kind, by key."""
        return self.resources.get(kind, EMPTY)

    @property
    def wallets(self) -> Mapping[str, Any]:
        return self.of("wallet")


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
class LiveState:
    """Everything read from the backend for one plan.

    `resources` maps a kind's name to every live object of that kind in the configured
    environments, active and inactive; `environments_read` names the environments whose
    listing completed (a plan is only made from complete reads). `client_chosen_ids`
    comes from the backend's declaration: whether planned ids can be deterministic.
    """

    resources: Mapping[str, tuple[Any, ...]] = field(default_factory=lambda: EMPTY)
    lines_of_credit: Mapping[str, LineOfCreditSummary] = field(default_factory=lambda: EMPTY)
    environments_read: tuple[str, ...] = ()
    client_chosen_ids: bool = True

    def of(self, kind: str) -> tuple[Any, ...]:
        return tuple(self.resources.get(kind, ()))

    @property
    def wallets(self) -> tuple[Any, ...]:
        return self.of("wallet")
