"""The backend interface: the only way the engine reads or changes a backend.

Imports only the model, the kinds' operation type and the backend registry. A backend
declares what it supports (`spec`, a `registry.BackendSpec`), turns its JSON into a
`LiveState` (`read`), and carries out one `Operation` at a time (`execute`), returning
only once the change is visible, or raising. Backends hide their identity rules behind
`Ownership`, so the engine and the pure diff never name a backend.

Contract for every implementation:
- `read` is all or nothing: any failed or partial read raises (a plan must never be made
  from an incomplete listing, or it could plan deletes).
- `execute` never creates a second object for the same entry, even when an earlier
  attempt's outcome is unknown: it resolves by reading before sending again.
- an operation of a kind or verb the backend does not support raises
  `UnsupportedOperation` (the config loader refuses such configurations first).
- no secret appears in any exception message or repr.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from voltage_iac.errors import UsageError, VoltageIacError
from voltage_iac.kinds.base import Operation
from voltage_iac.model import DesiredState, LiveState
from voltage_iac.providers.registry import BackendSpec


@dataclass(frozen=True)
class ConnectOptions:
    """How to reach a backend, from the command line (every backend reads what it needs)."""

    api_url: str | None = None  # --api-url (Voltage)
    emulator_db: str | None = None  # --emulator-db (Voltage's embedded emulator)
    wait_timeout: float = 120.0  # seconds to wait for an accepted change to become visible
    request_timeout: float = 30.0  # per read of the socket
    #: total seconds per request, retries included (VOLTAGE_IAC_REQUEST_DEADLINE, else 60)
    request_deadline: float = field(default_factory=lambda: deadline_from_environment(os.environ))
    max_requests_per_second: float | None = None  # shared by every worker; None: no cap


def deadline_from_environment(environ: Mapping[str, str]) -> float:
    """Total seconds per HTTP request: VOLTAGE_IAC_REQUEST_DEADLINE, else 60."""
    raw = environ.get("VOLTAGE_IAC_REQUEST_DEADLINE", "").strip()
    try:
        value = float(raw) if raw else 60.0
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise UsageError(
            f"VOLTAGE_IAC_REQUEST_DEADLINE={raw!r} is not a positive number of seconds"
        )
    return value


class UnsupportedOperation(VoltageIacError):
    """The backend has no way to carry out this operation."""


@runtime_checkable
class Backend(Protocol):
    spec: BackendSpec

    def describe(self) -> str:
        """A short, secret-free description of the backend, e.g. 'Voltage API at https://...'."""
        ...

    def read(self, desired: DesiredState) -> LiveState:
        """Read every object of every supported kind in the configured environments
        (active and inactive), and the references the kinds need. Raises on any failure."""
        ...

    def execute(self, operation: Operation) -> str | None:
        """Carry out one operation and wait until it is visible; returns the id of the
        object it acted on (for a create, the id of the new object)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Deferring(Protocol):
    """A backend that can send an operation and leave the wait for it to show for later.

    `begin(operation)` does what `execute` does up to the wait: it sends the writes (and
    settles an unknown outcome by reading before sending again, as `execute` does) and
    returns a function that waits until the change is visible, checks it, and returns
    what `execute` would have returned. The engine calls that function before it counts
    the change done; meanwhile it sends other changes' writes. `execute(op)` stays the
    same as `begin(op)()`."""

    def begin(self, operation: Operation) -> Callable[[], str | None]: ...


@dataclass(frozen=True)
class ReceiveRequest:
    """One receive request of `verify`: an invoice for `amount_msats` into `target` (a
    live object of `kind`), under a payment id the caller chose. Receive only: nothing
    here can move funds out."""

    kind: str
    key: str
    target: Any = field(compare=False, repr=False)
    payment_id: str
    amount_msats: int
    description: str
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReceiveState:
    """What the backend shows of a receive request: `pending` (no invoice yet), `ready`
    (an invoice to pay) or `failed` (the backend's error type, code and detail)."""

    status: str
    payment_request: str | None = None
    owed_msats: int | None = None  # what the backend says the payer owes (fees included)
    error_type: str | None = None
    error_code: str | None = None
    detail: str = ""
    #: what to do about a failure, when the backend knows better than the generic advice
    hint: str = ""
    #: the network the invoice must be for, when the target object does not carry one
    #: (e.g. a whole LNbits server is on one network), and the setting that names it
    network: str | None = None
    network_setting: str | None = None


@runtime_checkable
class Receiver(Protocol):
    """An optional capability of a backend: receive requests (used by `verify`).

    `start_receive` sends the request once and returns the reference to read it by; an
    answer that says the id is taken, or a write whose outcome is unknown, is left to the
    reads (the request is never sent a second time). `read_receive` returns None while
    the backend does not show the request yet."""

    def start_receive(self, request: ReceiveRequest) -> str: ...

    def read_receive(self, request: ReceiveRequest, reference: str) -> ReceiveState | None: ...


def unsupported(backend: str, operation: Operation) -> UnsupportedOperation:
    return UnsupportedOperation(
        f"the {backend} backend cannot {operation.verb} a {operation.kind}",
        hint="this configuration should have been refused at validate; please report it",
    )
