"""Several stacks in one command: `plan a/ b/`, `apply a/ b/ --auto-approve`, `drift a/ b/`.

Each path is a stack of its own, exactly as when it is given alone: its own
configuration, backend, engine, apply lock and plan. They run at once on a few threads
(`STACK_WORKERS`); a failure in one (an invalid configuration, an API error, a refused
apply) is recorded on that stack's `StackRun` and never stops or hides the others. The
command's one exit code is the most severe of the stacks' (`most_severe`).

Only the main thread sees Ctrl-C (and the `--deadline` watchdog, which sends the same
signal): on it, `run_stacks` sets the shared `stop` event - the engines of stacks being
applied then start no new change, let running ones finish and report what was done - and
waits for every stack before it returns. The rendering of several stacks' results
(sections, the Markdown summary table, the JSON wrapper) is in `render.stacks`.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voltage_iac.config import load_config
from voltage_iac.errors import (
    EXIT_AUTH,
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_SAFETY,
    UsageError,
    VoltageIacError,
)
from voltage_iac.model import DesiredState
from voltage_iac.threads import start_and_wait, wait_through_interrupts

#: Stacks run at once (each runs its own requests and apply workers on top).
STACK_WORKERS = 4

#: Exit codes from the most severe to the least: the command exits with the first one
#: any stack has. An interruption beats everything (the run is incomplete); then what
#: needs a person to fix the setup (invalid configuration or usage, refused credentials),
#: a refused apply (nothing was changed), an error, and last changes or drift found.
SEVERITY = (
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_AUTH,
    EXIT_SAFETY,
    EXIT_ERROR,
    EXIT_CHANGES,
    EXIT_OK,
)


def most_severe(codes: Iterable[int]) -> int:
    """The command's exit code for the stacks' codes (an unknown code counts as an error)."""
    rank = {code: index for index, code in enumerate(SEVERITY)}
    worst = EXIT_OK
    for code in codes:
        known = code if code in rank else EXIT_ERROR
        if rank[known] < rank[worst]:
            worst = known
    return worst


@dataclass
class StackRun:
    """One stack of the command: what it is, and how its run ended."""

    path: Path
    desired: DesiredState | None = None
    value: Any = None  # what the job returned (a plan, an apply outcome, a drift report)
    code: int = EXIT_OK
    error: str | None = None  # the message of the error that ended it, if one did
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # for the job's own use

    @property
    def stack(self) -> str:
        """The stack's name; for a configuration that did not load, its path."""
        return self.desired.stack if self.desired is not None else str(self.path)

    @property
    def ok(self) -> bool:
        return self.error is None


def require_paths(paths: Sequence[Path], command: str) -> list[Path]:
    """At least one configuration path (the command line accepts any number)."""
    if not paths:
        raise UsageError(
            f"{command} needs at least one configuration path (a file or a directory)",
            hint=f"e.g. voltage-iac {command} wallets.yaml, or several: "
            f"voltage-iac {command} stacks/payments stacks/treasury",
        )
    return list(paths)


def refuse_with_several(paths: Sequence[Path], **flags: object) -> None:
    """Flags that name one stack's objects or files cannot go with several stacks."""
    if len(paths) < 2:
        return
    used = [name for name, value in flags.items() if value]
    if used:
        names = ", ".join(name for name in used)
        raise UsageError(
            f"{names} applies to one stack, and {len(paths)} configuration paths were given",
            hint="run the command once per stack for that (e.g. in a CI matrix)",
        )


def load_stacks(paths: Sequence[Path]) -> list[StackRun]:
    """Load every configuration (a failure is that stack's, code 3); refuse two paths of
    one stack, since they would share its apply lock and its live objects."""
    runs = [StackRun(path) for path in paths]
    for run in runs:
        try:
            run.desired = load_config(run.path)
        except VoltageIacError as exc:
            _fail(run, exc)
    seen: dict[str, Path] = {}
    for run in runs:
        if run.desired is None:
            continue
        other = seen.get(run.stack)
        if other is not None:
            if other.resolve() == run.path.resolve():
                raise UsageError(f"{run.path} is given twice", hint="give each stack once")
            raise UsageError(
                f"{other} and {run.path} are the same stack {run.stack!r}",
                hint="give each stack once (a stack is one configuration file or directory)",
            )
        seen[run.stack] = run.path
    return runs


def run_stacks(
    runs: Sequence[StackRun],
    job: Callable[[StackRun, threading.Event], int],
    *,
    workers: int = STACK_WORKERS,
    stop: threading.Event | None = None,
    wait_on_interrupt: bool = False,
    on_interrupt: Callable[[int], None] | None = None,
    debug: bool = False,
) -> bool:
    """Run `job` for every loaded stack on up to `workers` threads; True when interrupted.

    `job(run, stop)` returns the stack's exit code and may set `run.value`; an error it
    raises becomes the stack's `error` and code. On Ctrl-C in the waiting main thread:
    `stop` is set; with `wait_on_interrupt` (apply) the running stacks are waited for
    (their engines stop starting changes), else the interrupt goes on to the caller."""
    stop = stop or threading.Event()
    pending = [run for run in runs if run.desired is not None]
    cursor = iter(pending)
    lock = threading.Lock()
    running: set[int] = set()
    alive = [0]
    finished = threading.Event()

    def one(run: StackRun) -> None:
        started = time.monotonic()
        try:
            run.code = job(run, stop)
        except VoltageIacError as exc:
            _fail(run, exc)
        except Exception as exc:  # a bug in one stack must not hide the others' results
            if debug:
                traceback.print_exc()
            run.error = f"unexpected {type(exc).__name__}: {exc}"
            run.code = EXIT_ERROR
        finally:
            run.seconds = time.monotonic() - started

    def worker() -> None:
        try:
            while True:
                with lock:
                    run = None if stop.is_set() else next(cursor, None)
                    if run is None:
                        return
                    running.add(id(run))
                try:
                    one(run)
                finally:
                    with lock:
                        running.discard(id(run))
        finally:
            with lock:
                alive[0] -= 1
                if alive[0] == 0:
                    finished.set()

    count = min(max(1, workers), len(pending))
    alive[0] = count
    if count == 0:
        finished.set()
    interrupted = False
    try:
        start_and_wait([(f"stack-{n}", worker) for n in range(count)], finished)
    except KeyboardInterrupt:
        stop.set()
        interrupted = True
        if not wait_on_interrupt:
            raise
        if on_interrupt is not None:
            with lock:
                busy = len(running)
            on_interrupt(busy)
        wait_through_interrupts(finished)
    for run in pending:
        if run.value is None and run.error is None and stop.is_set() and run.code == EXIT_OK:
            run.error = "not started: the command was interrupted"
            run.code = EXIT_INTERRUPTED
    return interrupted


def _fail(run: StackRun, exc: VoltageIacError) -> None:
    run.error = str(exc)
    run.code = exc.exit_code


__all__ = [
    "SEVERITY",
    "STACK_WORKERS",
    "StackRun",
    "load_stacks",
    "most_severe",
    "refuse_with_several",
    "require_paths",
    "run_stacks",
]
