"""The apply engine: carries out a plan's changes through a provider, in parallel.

Called by the command line after the plan passed its safety checks. Imports model,
plan, errors and the provider interface, never a concrete backend. Each change becomes
one operation (a replacement is create, then delete); operations run on a bounded
thread pool; each reports its own result. Ctrl-C stops new operations from starting,
lets running ones finish (each has its own deadline), and reports what was done and
what was not. Because ids are deterministic and every write is read back, a re-run
after any failure or interruption finishes the job without duplicates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from voltage_iac.diff import diff
from voltage_iac.errors import VoltageIacError
from voltage_iac.model import DesiredState, Policies
from voltage_iac.plan import Action, Plan, WalletChange
from voltage_iac.providers.base import CreateRequest, Provider


@dataclass
class OperationResult:
    key: str
    action: str
    status: str  # "done" | "failed" | "not started"
    wallet_id: str | None = None
    message: str = ""
    seconds: float = 0.0


@dataclass
class ApplyReport:
    results: list[OperationResult] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> list[OperationResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def not_started(self) -> list[OperationResult]:
        return [r for r in self.results if r.status == "not started"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_started and not self.interrupted


Event = Callable[[OperationResult], None]


def make_plan(
    desired: DesiredState, provider: Provider, *, targets: list[str] | None = None
) -> Plan:
    """Read the live state (all or nothing) and diff it against the configuration."""
    return diff(desired, provider.read(desired), targets=targets)


def apply_plan(
    plan: Plan,
    provider: Provider,
    *,
    parallelism: int = 4,
    on_result: Event | None = None,
    on_start: Callable[[WalletChange], None] | None = None,
    on_interrupt: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> ApplyReport:
    """Run every change of `plan`; never raises for a failed operation (see the report).

    On Ctrl-C, `on_interrupt` gets the number of operations still running; those finish
    (each within its own deadline) and further Ctrl-Cs do not abandon them, so the
    report always says what was done and what was not."""
    if parallelism < 1:
        raise VoltageIacError("parallelism must be at least 1")
    stop = stop or threading.Event()
    changes = list(plan.actionable)
    report = ApplyReport()
    lock = threading.Lock()

    def run(change: WalletChange) -> OperationResult:
        if stop.is_set():
            return OperationResult(change.key, change.action.value, "not started")
        if on_start is not None:
            on_start(change)
        started = time.monotonic()
        try:
            wallet_id = _execute(plan, change, provider)
        except VoltageIacError as exc:
            result = OperationResult(
                change.key, change.action.value, "failed", change.wallet_id, str(exc)
            )
        except Exception as exc:  # a bug must not hide the other operations' results
            result = OperationResult(
                change.key,
                change.action.value,
                "failed",
                change.wallet_id,
                f"unexpected error: {type(exc).__name__}: {exc}",
            )
        else:
            result = OperationResult(change.key, change.action.value, "done", wallet_id)
        result.seconds = time.monotonic() - started
        with lock:
            if on_result is not None:
                on_result(result)
        return result

    pool = ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="apply")
    futures: dict[Future[OperationResult], WalletChange] = {}
    try:
        for change in changes:  # one by one, so an interrupt here loses none of them
            futures[pool.submit(run, change)] = change
        pending = set(futures)
        while pending:
            # A short wait keeps the main thread responsive to Ctrl-C.
            _done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
    except KeyboardInterrupt:
        stop.set()
        report.interrupted = True
        pool.shutdown(wait=False, cancel_futures=True)
        running = [f for f in futures if not f.done()]
        if on_interrupt is not None:
            on_interrupt(len(running))
        # The process could not exit before these finish anyway (the pool's threads are
        # joined at exit): a second Ctrl-C would only lose their results.
        while running:
            try:
                _done, not_done = wait(running, timeout=0.2)
                running = list(not_done)
            except KeyboardInterrupt:
                continue
    finally:
        pool.shutdown(wait=True)

    for future, change in futures.items():
        if future.cancelled():
            report.results.append(
                OperationResult(change.key, change.action.value, "not started", change.wallet_id)
            )
        else:
            report.results.append(future.result())
    for change in changes[len(futures) :]:  # never submitted: interrupted while submitting
        report.results.append(
            OperationResult(change.key, change.action.value, "not started", change.wallet_id)
        )
    return report


def _execute(plan: Plan, change: WalletChange, provider: Provider) -> str | None:
    if change.action is Action.CREATE:
        return _create(plan, change, provider)
    if change.action is Action.UPDATE:
        assert change.wallet_id is not None and change.desired is not None
        if change.field("name") is not None:
            provider.rename_wallet(change.wallet_id, change.desired.name)
        if change.desired.policies is not None and any(
            c.field.startswith("policies.") for c in change.fields
        ):
            before = change.live.policies if change.live is not None else None
            provider.update_policies(change.wallet_id, before, change.desired.policies)
        return change.wallet_id
    if change.action is Action.REPLACE:
        assert change.wallet_id is not None
        new_id = _create(plan, change, provider)
        try:
            provider.delete_wallet(change.wallet_id)
        except VoltageIacError as exc:
            raise VoltageIacError(
                f"new wallet {new_id} was created, but the old wallet {change.wallet_id} "
                f"could not be deleted: {exc.message}",
                hint="the next plan lists the old wallet for deletion; re-run apply with "
                "--allow-replace once the cause is fixed",
            ) from exc
        return new_id
    if change.action is Action.DELETE:
        assert change.wallet_id is not None
        provider.delete_wallet(change.wallet_id)
        return change.wallet_id
    return change.wallet_id


def _create(plan: Plan, change: WalletChange, provider: Provider) -> str:
    assert change.desired is not None and change.generation is not None
    wallet_id = provider.create_wallet(
        CreateRequest(
            organization_id=plan.organization_id,
            stack=plan.stack,
            wallet=change.desired,
            generation=change.generation,
            wallet_id=change.new_wallet_id,
        )
    )
    policies = change.desired.policies
    if policies is not None and policies != Policies():
        provider.update_policies(wallet_id, None, policies)
    return wallet_id
