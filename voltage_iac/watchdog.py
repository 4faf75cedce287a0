"""The overall deadline of one command (`--deadline`): the command line's last bound on time.

Every request already has its own total deadline (the HTTP core), so a silent or trickling
server cannot hold a command; this bounds the whole command too (many slow requests, a
long apply). When it passes, the main thread gets SIGINT, exactly what Ctrl-C sends: a
blocking read is interrupted, and an apply stops starting new changes, lets running ones
finish and reports what was done, so nothing is left half-written. The command line then
reports the deadline (exit 1) instead of an interruption.
"""

from __future__ import annotations

import os
import signal
import threading
from types import TracebackType

#: Seconds a command may run by default (an apply of 10,000 wallets takes minutes).
DEFAULT_DEADLINE = 3600.0


class Watchdog:
    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.tripped = threading.Event()
        self._timer: threading.Timer | None = None

    def _trip(self) -> None:
        self.tripped.set()
        main = threading.main_thread().ident
        if main is not None:
            signal.pthread_kill(main, signal.SIGINT)
        else:  # pragma: no cover - there is always a main thread
            os.kill(os.getpid(), signal.SIGINT)

    def __enter__(self) -> Watchdog:
        if self.seconds is not None and threading.current_thread() is threading.main_thread():
            self._timer = threading.Timer(self.seconds, self._trip)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def message(self) -> str:
        return (
            f"the command's --deadline of {self.seconds:g}s passed; it was stopped as by "
            "Ctrl-C (running operations finished, nothing was left half-written)"
        )
