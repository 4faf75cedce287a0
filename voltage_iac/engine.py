"""The engine: the one workflow every caller goes through.

read -> diff -> policies -> review gate -> safety rules and deny verdicts -> confirmation
-> apply -> results, for every resource kind and every backend. The CLI parses options,
calls the engine, renders and maps errors to exit codes; any other caller gets the same
gate, because the only public way to change anything is `Engine.apply`, which makes the
plan itself, right before it applies it, and refuses what the gate refuses (a
`SafetyError` or `StalePlanError`, exit 5) before a single write.

Apply runs each change's operations (from its kind) in order, changes in parallel on a
bounded thread pool, each with its own result. Ctrl-C stops new changes from starting,
lets running ones finish (each has its own deadline), and reports what was done and what
was not. Because ids are deterministic and every write is read back, a re-run after any
failure or interruption finishes the job without duplicates.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from voltage_iac import kinds
from voltage_iac.diff import diff
from voltage_iac.drift import DriftReport, detect_drift
from voltage_iac.errors import (
    ApiError,
    SafetyError,
    SafetyViolation,
    StalePlanError,
    UsageError,
    VoltageIacError,
)
from voltage_iac.importer import import_wallets
from voltage_iac.kinds.base import Operation
from voltage_iac.locking import DEFAULT_WAIT, stack_lock
from voltage_iac.model import DesiredState, LiveState
from voltage_iac.plan import Action, Change, Plan, PolicyResult
from voltage_iac.policy import PolicyRun, judge, policy_run
from voltage_iac.providers.base import Backend, Deferring
from voltage_iac.stale import ReviewedPlan, stale_differences
from voltage_iac.threads import start_and_wait, wait_through_interrupts

_T = TypeVar("_T")


@dataclass
class OperationResult:
    key: str
    action: str
    status: str  # "done" | "failed" | "not started"
    id: str | None = None
    message: str = ""
    seconds: float = 0.0
    kind: str = "wallet"


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


@dataclass(frozen=True)
class ApplyOptions:
    """What the user allowed for this apply (flags), and what was reviewed."""

    allow_delete: bool = False
    allow_replace: bool = False
    force: bool = False
    unprotect: frozenset[str] = frozenset()
    parallelism: int = 10  # as Terraform
    targets: tuple[str, ...] = ()
    reviewed: ReviewedPlan | None = None  # a reviewed plan file (plan --out)
    checksum: str | None = None  # the checksum a reviewer approved (plan's last line)
    #: seconds after which no further change starts (those left are "not started")
    time_limit: float | None = None
    #: seconds to wait for another apply of the same stack on this machine to finish
    lock_wait: float = DEFAULT_WAIT
    #: the Rego policies judging the plan, with the overrides the review recorded
    policies: PolicyRun | None = None
    #: set by another thread to stop new changes from starting, as Ctrl-C does (an apply
    #: of several stacks at once, where only the main thread sees Ctrl-C)
    stop: threading.Event | None = field(default=None, compare=False)


@dataclass
class ApplyEvents:
    """Hooks for the caller's display; none of them can change what is applied."""

    on_plan: Callable[[Plan], None] | None = None  # the plan about to be gated
    confirm: Callable[[Plan], None] | None = None  # raise to cancel (after the gate)
    on_start: Callable[[Change], None] | None = None
    on_result: Callable[[OperationResult], None] | None = None
    on_interrupt: Callable[[int], None] | None = None
    on_notice: Callable[[str], None] | None = None  # e.g. waiting for another apply


@dataclass(frozen=True)
class Phase:
    """One finished step of the workflow, for the caller's timings (`-v`).

    `name` is "read" (count: live objects read), "diff" (count: changes planned) or
    "apply" (count: changes carried out); `requests` is the backend's request count
    for the step when the backend keeps one."""

    name: str
    seconds: float
    count: int
    requests: int | None = None
    per_kind: tuple[tuple[str, int], ...] = ()  # read: objects of each kind


@dataclass
class ApplyOutcome:
    plan: Plan
    report: ApplyReport


class Engine:
    """The workflow over one configuration and one open backend."""

    def __init__(
        self,
        desired: DesiredState,
        backend: Backend,
        *,
        on_phase: Callable[[Phase], None] | None = None,
    ) -> None:
        self.desired = desired
        self.backend = backend
        self.on_phase = on_phase

    def _requests(self) -> int | None:
        count = getattr(self.backend, "request_count", None)
        return count if isinstance(count, int) else None

    def _phase(
        self,
        name: str,
        started: float,
        count: int,
        requests_before: int | None,
        per_kind: tuple[tuple[str, int], ...] = (),
    ) -> None:
        if self.on_phase is None:
            return
        after = self._requests()
        spent = None if after is None or requests_before is None else after - requests_before
        self.on_phase(Phase(name, time.monotonic() - started, count, spent, per_kind))

    def describe(self) -> str:
        return self.backend.describe()

    # -- reading ---------------------------------------------------------------------------
    def read(self) -> LiveState:
        """The live state, all or nothing."""
        started, before = time.monotonic(), self._requests()
        live = self.backend.read(self.desired)
        if self.on_phase is not None:
            per_kind = tuple((kind, len(objs)) for kind, objs in sorted(live.resources.items()))
            self._phase("read", started, sum(n for _, n in per_kind), before, per_kind)
        return live

    def plan(
        self,
        targets: Sequence[str] = (),
        *,
        force: bool = False,
        policies: PolicyRun | None = None,
    ) -> Plan:
        """Read and diff; `force` is recorded in the plan (the guards it overrides), and
        so are the policies' verdicts on the plan's document and their overrides."""
        return self._plan(self.read(), targets, force=force, policies=policies)

    def _plan(
        self,
        live: LiveState,
        targets: Sequence[str],
        *,
        force: bool = False,
        policies: PolicyRun | None = None,
    ) -> Plan:
        the_plan = self._diff(live, targets)
        the_plan = dataclasses.replace(the_plan, force=force) if force else the_plan
        # The configuration's own policies judge every plan, whoever asks for it; a
        # caller passes a PolicyRun only to add paths or reviewed overrides.
        return judge(the_plan, policies if policies is not None else policy_run(self.desired))

    def _diff(self, live: LiveState, targets: Sequence[str]) -> Plan:
        started = time.monotonic()
        the_plan = diff(self.desired, live, targets=list(targets) or None)
        self._check_targets(targets, the_plan)
        self._phase("diff", started, len(the_plan.actionable), None)
        return the_plan

    def drift(self, *, unmanaged: str = "report") -> DriftReport:
        live = self.read()
        return detect_drift(self.desired, live, self._diff(live, ()), unmanaged=unmanaged)

    def import_wallets(self, environment: str) -> tuple[str, list[str]]:
        return import_wallets(self.desired, self.read(), environment)

    def _check_targets(self, targets: Sequence[str], the_plan: Plan) -> None:
        known = {k for kind in kinds.registered() for k in self.desired.of(kind.name)}
        known |= {c.key for c in the_plan.changes}
        unknown = sorted(set(targets) - known)
        if unknown:
            raise UsageError(
                f"--target names unknown key(s): {', '.join(unknown)}",
                hint="use a key from the configuration (e.g. of its wallets section)",
            )

    # -- applying --------------------------------------------------------------------------
    def lock_scope(self) -> str:
        """What one apply at a time is about: the backend, where it is, and the stack."""
        d = self.desired
        where = d.organization_id or str(d.provider_options.get("url", ""))
        return f"stack {d.stack} ({d.provider_kind} {where})".replace("  ", " ")

    def apply(self, options: ApplyOptions, events: ApplyEvents | None = None) -> ApplyOutcome:
        """Plan afresh, pass the review gate and the safety rules, confirm, apply.

        The whole of it holds the stack's apply lock, so a second apply of the same stack
        waits and then plans from what the first one did: it never re-sends its writes."""
        events = events or ApplyEvents()
        with stack_lock(self.lock_scope(), wait=options.lock_wait, on_wait=events.on_notice):
            return self._apply_locked(options, events)

    def _apply_locked(self, options: ApplyOptions, events: ApplyEvents) -> ApplyOutcome:
        if options.parallelism < 1:
            raise UsageError("parallelism must be at least 1")
        reviewed = options.reviewed
        if reviewed is not None and options.targets:
            raise UsageError("--target cannot be combined with --plan (the plan has its targets)")
        if reviewed is not None:
            reviewed.check_matches(self.desired)
        _check_policy_overrides(options)
        targets = tuple(reviewed.targets) if reviewed is not None else options.targets
        the_plan = self._plan(self.read(), targets, force=options.force, policies=options.policies)
        self._review_gate(the_plan, options)
        if reviewed is not None:
            _check_reviewed_force(reviewed, the_plan)
        if events.on_plan is not None:
            events.on_plan(the_plan)
        if not the_plan.has_changes:
            return ApplyOutcome(the_plan, ApplyReport())
        violations = the_plan.check_safety(
            allow_delete=options.allow_delete,
            allow_replace=options.allow_replace,
            force=options.force,
            unprotect=options.unprotect,
        )
        if the_plan.policy is not None:
            violations.extend(_policy_violations(the_plan.policy))
        if violations:
            raise SafetyError(violations)
        if events.confirm is not None:
            events.confirm(the_plan)
        stop_at = None if options.time_limit is None else time.monotonic() + options.time_limit
        started, before = time.monotonic(), self._requests()
        report = self._execute(the_plan, options.parallelism, events, stop_at, options.stop)
        self._phase("apply", started, len(report.results), before)
        return ApplyOutcome(the_plan, report)

    def _review_gate(self, fresh: Plan, options: ApplyOptions) -> None:
        reviewed = options.reviewed
        if reviewed is not None and reviewed.checksum != fresh.checksum():
            raise StalePlanError(
                f"the reviewed plan {reviewed.source} is stale; nothing was changed",
                [
                    *stale_differences(reviewed.document, fresh),
                    "make a new plan and have it reviewed again",
                ],
            )
        if options.checksum is not None and options.checksum != fresh.checksum():
            raise StalePlanError(
                f"the new plan's checksum {fresh.checksum()} is not {options.checksum}; "
                "nothing was changed",
                ["the configuration or the live state changed since that plan was made"],
            )

    def _execute(
        self,
        the_plan: Plan,
        parallelism: int,
        events: ApplyEvents,
        stop_at: float | None,
        halt: threading.Event | None = None,
    ) -> ApplyReport:
        stop = threading.Event()
        lock = threading.Lock()
        report_lock = threading.Lock()
        changes = list(the_plan.actionable)
        report = ApplyReport()
        # A backend that can leave the wait for a change to show for later (`Deferring`)
        # gets it back: the worker that sent the change's writes goes on to the next
        # change, and one of `parallelism` confirming threads waits for it to show. So
        # `parallelism` changes send writes at a time, and waits do not hold them back.
        deferring = isinstance(self.backend, Deferring)

        def start(change: Change) -> Callable[[], OperationResult]:
            """Send a change's writes; the function returned waits until they show and
            gives the change's result (it never raises)."""
            if events.on_start is not None:
                events.on_start(change)
            started = time.monotonic()
            finish: Callable[[], str | None]
            try:
                finish = self._begin_change(the_plan, change, defer=deferring)
            except Exception as exc:  # reported by the result, as an error of the wait is
                error = exc

                def finish() -> str | None:
                    raise error

            def complete() -> OperationResult:
                try:
                    result_id = finish()
                except VoltageIacError as exc:
                    result = OperationResult(
                        change.key,
                        change.action.value,
                        "failed",
                        change.id,
                        str(exc),
                        kind=change.kind,
                    )
                except Exception as exc:  # a bug must not hide the other operations' results
                    result = OperationResult(
                        change.key,
                        change.action.value,
                        "failed",
                        change.id,
                        f"unexpected error: {type(exc).__name__}: {exc}",
                        kind=change.kind,
                    )
                else:
                    result = OperationResult(
                        change.key, change.action.value, "done", result_id, kind=change.kind
                    )
                result.seconds = time.monotonic() - started
                if events.on_result is not None:
                    with report_lock:
                        events.on_result(result)
                return result

            return complete

        # Workers take the next change from a shared cursor; the main thread only waits,
        # so a Ctrl-C there can never lose track of a running change (each worker or
        # confirming thread records its own result), and each completion costs O(1).
        results: dict[int, OperationResult] = {}
        cursor = iter(range(len(changes)))
        in_flight: set[int] = set()
        state = threading.Condition(lock)
        waiting: queue.SimpleQueue[tuple[int, Callable[[], OperationResult]] | None]
        waiting = queue.SimpleQueue()

        alive = [0]  # worker and confirming threads not finished yet (under `state`)
        sending = [0]  # workers not finished yet (under `state`)
        finished = threading.Event()

        def record(index: int, complete: Callable[[], OperationResult]) -> None:
            try:
                results[index] = complete()
            finally:
                with state:
                    in_flight.discard(index)

        def done_thread() -> None:
            with state:
                alive[0] -= 1
                if alive[0] == 0:
                    finished.set()

        def worker() -> None:
            try:
                while True:
                    if stop_at is not None and time.monotonic() >= stop_at:
                        stop.set()
                    if halt is not None and halt.is_set():
                        stop.set()
                    with state:
                        index = None if stop.is_set() else next(cursor, None)
                        if index is None:
                            return
                        in_flight.add(index)
                    try:
                        complete = start(changes[index])
                    except BaseException:
                        with state:
                            in_flight.discard(index)
                        raise
                    if deferring:
                        waiting.put((index, complete))
                    else:
                        record(index, complete)
            finally:
                with state:
                    sending[0] -= 1
                    last_sender = sending[0] == 0
                if last_sender and deferring:
                    for _ in range(confirmers):
                        waiting.put(None)  # after every queued wait: each confirmer stops
                done_thread()

        def confirmer() -> None:
            try:
                while True:
                    item = waiting.get()
                    if item is None:
                        return
                    record(*item)
            finally:
                done_thread()

        count = min(parallelism, len(changes))
        confirmers = count if deferring else 0
        if count == 0:
            finished.set()
        alive[0] = count + confirmers
        sending[0] = count
        # The main thread waits on an event the threads set (threads.py).
        try:
            start_and_wait(
                [(f"apply-wait-{n}", confirmer) for n in range(confirmers)]
                + [(f"apply-{n}", worker) for n in range(count)],
                finished,
            )
        except KeyboardInterrupt:
            stop.set()
            report.interrupted = True
            if events.on_interrupt is not None:
                with state:
                    running = len(in_flight)
                events.on_interrupt(running)
            # Running changes finish (each has its own deadline).
            wait_through_interrupts(finished)
        if halt is not None and halt.is_set() and len(results) < len(changes):
            report.interrupted = True

        for index, change in enumerate(changes):
            result = results.get(index)
            if result is None:
                result = OperationResult(
                    change.key, change.action.value, "not started", change.id, kind=change.kind
                )
            report.results.append(result)
        return report

    def _begin_change(
        self, the_plan: Plan, change: Change, *, defer: bool
    ) -> Callable[[], str | None]:
        """Carry out one change's operations in order, each visible before the next is
        sent; returns the function that gives the id the change ends on. With `defer`
        (a `Deferring` backend), the last operation's wait to show is left to that
        function."""
        kind = kinds.get(change.kind)
        backend = self.backend
        created: str | None = None
        last: str | None = change.id
        operations = kind.operations(change, the_plan)
        for number, operation in enumerate(operations, 1):
            if operation.id is None and operation.verb != "create":
                operation = dataclasses.replace(operation, id=created)
            if defer and number == len(operations) and isinstance(backend, Deferring):
                wait = self._outcome(change, operation, created, partial(backend.begin, operation))
                return partial(self._finish_change, change, operation, wait, created, last)
            result = self._outcome(change, operation, created, partial(backend.execute, operation))
            created, last = _advance(operation, result, created, last)
        ends_on = _ends_on(change, created, last)
        return lambda: ends_on

    def _finish_change(
        self,
        change: Change,
        operation: Operation,
        wait: Callable[[], str | None],
        created: str | None,
        last: str | None,
    ) -> str | None:
        """The wait of a change's last operation, then the id the change ends on."""
        result = self._outcome(change, operation, created, wait)
        return _ends_on(change, *_advance(operation, result, created, last))

    def _outcome(
        self, change: Change, operation: Operation, created: str | None, call: Callable[[], _T]
    ) -> _T:
        """`call()` for one operation of `change`; a failure after a replacement made its
        new object is reported as a half-done replacement (see `_half_replaced`)."""
        try:
            return call()
        except VoltageIacError as exc:
            if change.action is Action.REPLACE and created is not None:
                raise self._half_replaced(change, created, operation, exc) from exc
            raise

    def _half_replaced(
        self, change: Change, created: str, operation: Operation, exc: VoltageIacError
    ) -> VoltageIacError:
        """A replacement whose old object could not be removed after the new one was made.

        When the old one turned out to hold funds (they arrived after the plan), the new,
        empty one is deleted again, so the entry never keeps two live objects and two
        allocations; the next plan shows the funded one as blocked."""
        what = (
            f"the old {change.kind} {change.id} could not be deleted ({operation.verb}): "
            f"{exc.message}"
        )
        if isinstance(exc, ApiError) and exc.error_type == "wallet_not_empty":
            undo = dataclasses.replace(operation, verb="delete", id=created, live=None)
            try:
                self.backend.execute(undo)
            except VoltageIacError as undo_exc:
                return VoltageIacError(
                    f"new {change.kind} {created} was created, but {what}; removing the new "
                    f"one failed too: {undo_exc.message}",
                    hint="two live wallets now exist for this entry: drain the old one, then "
                    "re-run apply with --allow-replace",
                )
            return VoltageIacError(
                f"{what}; the replacement was undone (new {change.kind} {created} deleted "
                "again), so the entry still has exactly one live wallet",
                hint=f"the old {change.kind} received funds after the plan was made: drain "
                "it, then plan again",
            )
        return VoltageIacError(
            f"new {change.kind} {created} was created, but {what}",
            hint=f"the next plan lists the old {change.kind} for deletion; re-run apply with "
            "--allow-replace once the cause is fixed",
        )


def _advance(
    operation: Operation, result: str | None, created: str | None, last: str | None
) -> tuple[str | None, str | None]:
    """(created, last) after an operation that returned `result`."""
    if operation.verb == "create":
        created = result
    return created, result if result is not None else last


def _ends_on(change: Change, created: str | None, last: str | None) -> str | None:
    """The id a change ends on: the object it made, else the last one it touched."""
    return created if change.action in (Action.CREATE, Action.REPLACE) else last


def _check_reviewed_force(reviewed: ReviewedPlan, fresh: Plan) -> None:
    """A reviewed plan and its apply agree on --force: the override is part of the review."""
    recorded = reviewed.force
    if recorded and not fresh.force:
        overridden = "; ".join(reviewed.overrides) or "no guard"
        raise SafetyError(
            [
                SafetyViolation(
                    f"reviewed plan {reviewed.source}",
                    f"was made with --force (it overrides: {overridden})",
                    "--force",
                )
            ]
        )
    if fresh.force and not recorded and fresh.guard_violations():
        raise StalePlanError(
            f"the reviewed plan {reviewed.source} was made without --force, but applying it "
            "overrides guards the review did not show; nothing was changed",
            [
                *(f"{v.key}: {v.what}" for v in fresh.guard_violations()),
                "make the plan again with `plan --force --out FILE` and have it reviewed",
            ],
        )


def _check_policy_overrides(options: ApplyOptions) -> None:
    """A policy override counts only when it was reviewed: recorded in the reviewed plan
    file (`plan --override-policy ID --out FILE`), or covered by the reviewed checksum
    (the checksum covers the overrides)."""
    overrides = options.policies.overrides if options.policies is not None else ()
    reviewed = options.reviewed
    if reviewed is None:
        if overrides and options.checksum is None:
            raise UsageError(
                "--override-policy is accepted only for a reviewed plan",
                hint="make the plan with `plan --override-policy ID --out FILE`, have it "
                "reviewed, then `apply --plan FILE --override-policy ID`",
            )
        return
    recorded = reviewed.policy_overrides
    if sorted(recorded) != sorted(overrides):
        raise SafetyError(
            [
                SafetyViolation(
                    f"reviewed plan {reviewed.source}",
                    "records the policy overrides "
                    f"[{', '.join(sorted(recorded))}], this apply names "
                    f"[{', '.join(sorted(overrides))}]",
                    "the same --override-policy IDs as the plan",
                )
            ]
        )


def _policy_violations(result: PolicyResult) -> list[SafetyViolation]:
    out = []
    for verdict in result.blocking():
        about = f"{verdict.kind or 'resource'} {verdict.key}: " if verdict.key else ""
        source = f" ({verdict.file})" if verdict.file else ""
        out.append(
            SafetyViolation(
                f"policy {verdict.type} {verdict.id}",
                f"{about}{verdict.message}{source}",
                f"--override-policy {verdict.id} in a reviewed plan",
            )
        )
    return out


def summarize(report: ApplyReport) -> dict[str, Any]:
    """Counts of a report, for renderers."""
    return {
        "done": sum(1 for r in report.results if r.status == "done"),
        "failed": len(report.failed),
        "not_started": len(report.not_started),
        "interrupted": report.interrupted,
    }
