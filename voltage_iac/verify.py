"""Verification: prove that every managed wallet can take a payment.

A plan that applied cleanly says the API accepted the wallets, not that a wallet can be
paid. `verify` asks the backend, for each managed object that can receive, for a receive
invoice of a small amount (a receive request only: nothing here moves funds out), waits
with bounded backoff until the invoice is there or the request failed, decodes the
invoice (BOLT11) and checks its amount and its network prefix against the wallet.

Every request carries a payment id chosen here, a description and metadata naming
`voltage-iac verify <stack>/<key>`, so a person reading the payment history knows where
it came from. A request is sent once: an answer that says the id is taken, or a write
whose outcome is unknown, is resolved by reading that id, never by asking again.

Kind-neutral: the objects come from the backend's read (those owned by the stack, or
pinned in the configuration), the receive from the backend's optional `Receiver`
capability, which its declaration in `providers/registry.py` announces (`receives`).
A backend whose objects carry no network (an LNbits server is on one network) names it
in each `ReceiveState`, with the configuration setting a person would correct.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import bolt11

from voltage_iac.errors import ApiError, UsageError, VoltageIacError, WriteOutcomeUnknown
from voltage_iac.model import DesiredState, LiveState, network_response_name
from voltage_iac.providers.base import Backend, Receiver, ReceiveRequest, ReceiveState
from voltage_iac.units import AmountError, parse_limit
from voltage_iac.waiting import poll_until

#: BOLT11 currency prefixes (after "ln") by network, in the response spelling. Mutinynet
#: is a signet: `lntbs`, as the Voltage contract's own examples spell its invoices.
PREFIX_BY_NETWORK = {
    "mainnet": "bc",
    "testnet": "tb",
    "signet": "tbs",
    "mutinynet": "tbs",
    "regtest": "bcrt",
}
#: The network an invoice prefix is for (the first spelling of each prefix above).
NETWORK_BY_PREFIX = {"bc": "mainnet", "tb": "testnet", "tbs": "signet", "bcrt": "regtest"}
#: The metadata key that marks a receive request made by verify.
MARK_KEY = "voltage_iac_verify"


@dataclass(frozen=True)
class VerifyOptions:
    amount_msats: int = 1000
    timeout: float = 60.0  # seconds for the whole run
    targets: tuple[str, ...] = ()
    parallelism: int = 4
    poll_initial: float = 0.05
    poll_max: float = 1.0


@dataclass
class VerifyResult:
    kind: str
    key: str
    id: str | None
    status: str  # "verified" | "failed"
    seconds: float = 0.0
    payment_id: str | None = None
    network: str | None = None
    invoice_prefix: str | None = None
    invoice_msats: int | None = None
    error_type: str | None = None  # the API's error type, or what verify found wrong
    message: str = ""
    hint: str = ""


@dataclass
class VerifyReport:
    stack: str
    backend: str
    amount_msats: int
    results: list[VerifyResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[VerifyResult]:
        return [r for r in self.results if r.status != "verified"]

    @property
    def ok(self) -> bool:
        return not self.failed


def parse_amount(text: str) -> int:
    """`1sat`, `1 sat`, `1000 msat`, `0.00000001 btc` -> msats (more than zero)."""
    spaced = re.sub(r"^\s*([0-9._]+)\s*([A-Za-z]+)\s*$", r"\1 \2", text)
    try:
        msats = parse_limit(spaced)
    except AmountError as exc:
        raise UsageError(f"--amount {text!r}: {exc}", hint="e.g. --amount 1sat") from None
    if msats <= 0:
        raise UsageError(f"--amount {text!r} must be more than zero", hint="e.g. --amount 1sat")
    return msats


def managed(desired: DesiredState, live: LiveState, kind: str = "wallet") -> list[tuple[str, Any]]:
    """(key, live object) for every active object of `kind` that the configuration
    manages: owned by its stack under a configured key, or pinned by id."""
    entries = desired.of(kind)
    pinned = {getattr(w, "pinned_id", None): k for k, w in entries.items()}
    found: dict[str, Any] = {}
    for current in live.of(kind):
        if not current.active:
            continue
        owner = current.owner
        if current.id in pinned:
            found[pinned[current.id]] = current
        elif owner is not None and owner.stack == desired.stack and owner.key in entries:
            found[owner.key] = current
    return sorted(found.items())


def mark(stack: str, key: str) -> str:
    return f"voltage-iac verify {stack}/{key}"


def verify(
    desired: DesiredState,
    backend: Backend,
    live: LiveState,
    options: VerifyOptions,
    *,
    on_result: Callable[[VerifyResult], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> VerifyReport:
    """Verify every managed object (of the targets, if given) of `live`."""
    if not backend.spec.receives or not isinstance(backend, Receiver):
        raise UsageError(f"{backend.describe()} cannot make receive requests, so cannot verify")
    started = clock()
    deadline = started + options.timeout
    objects = managed(desired, live)
    if options.targets:
        known = set(desired.wallets)
        unknown = sorted(set(options.targets) - known)
        if unknown:
            raise UsageError(
                f"--target names unknown key(s): {', '.join(unknown)}",
                hint="use a key of the configuration's wallets section",
            )
        objects = [(k, o) for k, o in objects if k in options.targets]
    report = VerifyReport(desired.stack, backend.describe(), options.amount_msats)
    lock = threading.Lock()
    receiver: Receiver = backend

    def one(item: tuple[str, Any]) -> VerifyResult:
        key, target = item
        result = _verify_one(desired.stack, key, target, receiver, options, deadline, clock)
        if on_result is not None:
            with lock:
                on_result(result)
        return result

    if objects:
        workers = max(1, min(options.parallelism, len(objects)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify") as pool:
            report.results = list(pool.map(one, objects))
    missing = sorted(set(options.targets or desired.wallets) - {k for k, _ in objects})
    for key in missing:
        report.results.append(
            VerifyResult(
                "wallet",
                key,
                None,
                "failed",
                error_type="not_found",
                message="no live wallet of this stack for this key",
                hint="run plan and apply first: only wallets that exist can be verified",
            )
        )
    report.results.sort(key=lambda r: r.key)
    report.seconds = clock() - started
    return report


def _verify_one(
    stack: str,
    key: str,
    target: Any,
    receiver: Receiver,
    options: VerifyOptions,
    deadline: float,
    clock: Callable[[], float],
) -> VerifyResult:
    started = clock()
    network = getattr(target, "network", None)
    result = VerifyResult("wallet", key, target.id, "failed", network=network)
    request = ReceiveRequest(
        kind="wallet",
        key=key,
        target=target,
        payment_id=str(uuid.uuid4()),
        amount_msats=options.amount_msats,
        description=mark(stack, key),
        metadata={MARK_KEY: f"{stack}/{key}"},
    )
    result.payment_id = request.payment_id
    try:
        _check(request, receiver, options, deadline, clock, result)
    except _Failed as failure:
        result.error_type, result.message, result.hint = failure.args
    except WriteOutcomeUnknown as exc:
        result.error_type = "outcome_unknown"
        result.message = exc.message
        result.hint = "the request was not sent again; run verify again"
    except VoltageIacError as exc:
        result.error_type = exc.error_type if isinstance(exc, ApiError) else None
        result.error_type = result.error_type or type(exc).__name__
        result.message = exc.message
        result.hint = exc.hint or "check the wallet in the dashboard, then run verify again"
    else:
        result.status = "verified"
    result.seconds = clock() - started
    return result


class _Failed(Exception):
    """(error type, message, what to do)."""


def _check(
    request: ReceiveRequest,
    receiver: Receiver,
    options: VerifyOptions,
    deadline: float,
    clock: Callable[[], float],
    result: VerifyResult,
) -> None:
    reference = receiver.start_receive(request)
    seen: list[ReceiveState | None] = [None]

    def settled() -> bool:
        state = receiver.read_receive(request, reference)
        seen[0] = state
        return state is not None and state.status != "pending"

    budget = max(0.0, deadline - clock())
    poll_until(settled, budget, initial=options.poll_initial, maximum=options.poll_max)
    state = seen[0]
    if state is None:
        raise _Failed(
            "not_visible",
            f"receive request {request.payment_id} did not show up within the time limit",
            "its outcome is unknown and it was not sent again: run verify again "
            "(a larger --timeout if the API is slow)",
        )
    if state.status == "pending":
        raise _Failed(
            "timeout",
            f"no invoice for receive request {request.payment_id} within the time limit",
            "the API is slow to make invoices: run verify again with a larger --timeout",
        )
    if state.status == "failed":
        raise _Failed(
            state.error_type or "receive_failed",
            _failure_text(state),
            state.hint or _failure_hint(state),
        )
    if result.network is None and state.network is not None:
        result.network = state.network  # the backend's network, for every object it holds
    _check_invoice(request, state, result)


def _failure_text(state: ReceiveState) -> str:
    text = "the receive request failed"
    reason = ", ".join(
        p for p in (state.error_type, state.error_code and f"code {state.error_code}") if p
    )
    if reason:
        text += f" ({reason})"
    if state.detail:
        text += f": {state.detail[:200]}"
    return text


def _failure_hint(state: ReceiveState) -> str:
    if state.error_code == "invalid_payment_amount":
        return (
            "the wallet's receive processing fee refused the request: check "
            "policies.processing_fee.receive_basis_points of this wallet and of its line "
            "of credit, then run verify again"
        )
    return (
        "the API could not make an invoice for this wallet: check the wallet and its line "
        "of credit in the dashboard (or ask Voltage support, with the payment id), then run "
        "verify again"
    )


def _check_invoice(request: ReceiveRequest, state: ReceiveState, result: VerifyResult) -> None:
    check_invoice(
        state.payment_request or "",
        network=result.network,
        requested_msats=request.amount_msats,
        owed_msats=state.owed_msats,
        result=result,
        network_setting=state.network_setting,
    )


def check_invoice(
    payment_request: str,
    *,
    network: str | None,
    requested_msats: int,
    owed_msats: int | None = None,
    result: VerifyResult | None = None,
    network_setting: str | None = None,
) -> None:
    """Decode a BOLT11 invoice; raise `_Failed` unless its amount is the one asked for
    (`owed_msats` when the backend adds fees, never less than `requested_msats`) and its
    prefix is the network's. `network_setting` names the configuration setting the
    expected network comes from, when a person may have set it wrong."""
    try:
        decoded = bolt11.decode(payment_request)
    except Exception as exc:  # the decoder raises several types for bad input
        raise _Failed(
            "invalid_invoice",
            f"the invoice is not a valid BOLT11 invoice ({type(exc).__name__})",
            "report it to the API's provider, with the payment id",
        ) from None
    prefix = "ln" + str(decoded.currency)
    amount = int(decoded.amount_msat) if decoded.amount_msat is not None else None
    if result is not None:
        result.invoice_prefix = prefix
        result.invoice_msats = amount
    if network is not None:
        expected = PREFIX_BY_NETWORK.get(network_response_name(network))
        if expected is None or decoded.currency != expected:
            want = f"ln{expected}" if expected else "a known prefix"
            hint = (
                "a payer on the wallet's network could not pay it: report it to the API's "
                "provider, with the payment id"
            )
            actual = NETWORK_BY_PREFIX.get(str(decoded.currency))
            if network_setting is not None and actual is not None:
                hint = (
                    f"a payer on {network} could not pay it: if the server's funding source "
                    f"is on {actual}, set `{network_setting}: {actual}` in the configuration; "
                    f"otherwise connect the server to a {network} node"
                )
            raise _Failed(
                "network_mismatch",
                f"the invoice is for {prefix}, but the wallet is on {network} ({want})",
                hint,
            )
    want_msats = owed_msats if owed_msats is not None else requested_msats
    if amount is None or amount != want_msats or amount < requested_msats:
        shown = "any amount" if amount is None else f"{amount} msats"
        raise _Failed(
            "amount_mismatch",
            f"the invoice asks {shown}, expected {want_msats} msats "
            f"(requested {requested_msats} msats)",
            "report it to the API's provider, with the payment id",
        )


def network_matches(payment_request: str, network: str) -> bool:
    """Whether a BOLT11 invoice's prefix is the one of `network` (for callers and tests)."""
    try:
        check_invoice(payment_request, network=network, requested_msats=0, owed_msats=None)
    except _Failed as failure:
        return failure.args[0] != "network_mismatch"
    return True


def summary_line(report: VerifyReport) -> str:
    verified = len(report.results) - len(report.failed)
    return (
        f"Verify {'complete' if report.ok else 'FAILED'}: {verified} verified, "
        f"{len(report.failed)} failed ({report.seconds:.1f}s)."
    )


def keys_of(results: Sequence[Any]) -> tuple[str, ...]:
    """The keys of done apply results (for `apply --verify`)."""
    return tuple(sorted({r.key for r in results if r.status == "done" and r.action != "delete"}))
