"""Waiting until a change is visible: the one polling loop every provider uses.

Backends accept a write and show it a little later (Voltage answers 202; LNbits lists a
new name after its cache turns over). A provider that must return only once its change is
visible calls `poll_until` with a check that reads the live state: the check is called at
once, then after pauses that double from `initial` up to `maximum`, until it holds or the
budget is spent. No pause runs past the budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["poll_until"]


def poll_until(
    check: Callable[[], bool],
    budget: float,
    *,
    initial: float = 0.05,
    maximum: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Call `check` with growing pauses until it returns true (then True) or the next
    pause would end after `budget` seconds from now (then False)."""
    if initial <= 0 or maximum < initial:
        raise ValueError("need 0 < initial <= maximum")
    deadline = clock() + budget
    pause = initial
    while True:
        if check():
            return True
        if clock() + pause > deadline:
            return False
        sleep(pause)
        pause = min(pause * 2, maximum)
