"""The provider interface: the only way the engine reads or changes a backend.

Imports only the model. A provider turns backend JSON into `LiveState` (read) and carries
out one operation at a time (writes), each of which returns only once the change is
visible or raises. Providers hide their backend's identity rules behind `Ownership`
and `Capabilities`, so the engine and the pure diff never name a backend.

Contract for every implementation:
- `read` is all or nothing: any failed or partial read raises (a plan must never be made
  from an incomplete listing, or it could plan deletes).
- writes never create a second wallet for the same entry, even when an earlier attempt's
  outcome is unknown: resolve by reading before sending again.
- no secret appears in any exception message or repr.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from voltage_iac.model import Capabilities, DesiredState, DesiredWallet, LiveState, Policies


@dataclass(frozen=True)
class CreateRequest:
    """Everything a provider needs to create one wallet."""

    organization_id: str
    stack: str
    wallet: DesiredWallet
    generation: int
    wallet_id: str | None  # planned id when the client chooses ids, else None


@runtime_checkable
class Provider(Protocol):
    capabilities: Capabilities

    def describe(self) -> str:
        """A short, secret-free description of the backend, e.g. 'Voltage API at https://...'."""
        ...

    def read(self, desired: DesiredState) -> LiveState:
        """Read every wallet in the configured environments (active and inactive),
        the line-of-credit summaries, and the policies of owned wallets whose config
        manages policies. Raises on any failure."""
        ...

    def create_wallet(self, request: CreateRequest) -> str:
        """Create the wallet (idempotently) and wait until it is visible; returns its id."""
        ...

    def rename_wallet(self, wallet_id: str, name: str) -> None:
        """Rename in place and wait until the new name is visible."""
        ...

    def update_policies(self, wallet_id: str, before: Policies | None, after: Policies) -> None:
        """Change policies from `before` to `after` and wait until visible."""
        ...

    def delete_wallet(self, wallet_id: str) -> None:
        """Delete (soft, on Voltage) and wait until the wallet is inactive or gone."""
        ...

    def close(self) -> None: ...
