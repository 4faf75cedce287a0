"""Work fanned out on daemon threads, waited for by the main thread.

The engine (changes of one apply) and `stacks.py` (several stacks) both start their
workers here and wait on an event the last worker sets. Never `Thread.join`: a join
interrupted by Ctrl-C can leave a running thread looking finished; waiting on the event
in short steps lets Ctrl-C reach the main thread at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

STEP = 0.2  # seconds between looks at the event (each wait can be interrupted)


def start_and_wait(
    threads: Iterable[tuple[str, Callable[[], None]]], finished: threading.Event
) -> None:
    """Start a daemon thread for each (name, target), then wait until `finished` is set.
    Ctrl-C raises KeyboardInterrupt here; the threads go on."""
    for name, target in threads:
        threading.Thread(target=target, name=name, daemon=True).start()
    while not finished.wait(timeout=STEP):
        pass


def wait_through_interrupts(finished: threading.Event) -> None:
    """Wait until `finished` is set, whatever further Ctrl-C comes (the running work
    finishes; a second Ctrl-C would only lose its results)."""
    while True:
        try:
            if finished.wait(timeout=STEP):
                return
        except KeyboardInterrupt:
            continue
