"""One apply per stack at a time, on one machine: an advisory file lock.

Called by the engine around every apply (for every caller), before it reads the live
state: a second apply of the same stack waits for the first to finish (bounded), then
plans afresh, so it sees what the first did and never sends its writes again.

Reach: processes and threads on one machine that share the lock folder
(`VOLTAGE_IAC_LOCK_DIR`, else `~/.cache/voltage-iac/locks`). Runners that share nothing
(separate CI machines) are serialised by the CI system instead (GitHub Actions
`concurrency:` per stack, as in the shipped recipe). The lock is `flock(2)`: the kernel
releases it when its holder exits, even when killed, so a crash never leaves it stuck.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from voltage_iac.errors import VoltageIacError

try:  # POSIX; elsewhere applies are not serialised by this module
    import fcntl
except ImportError:  # pragma: no cover - not a POSIX system
    fcntl = None  # type: ignore[assignment]

#: Seconds a second apply of a stack waits for the first before it gives up.
DEFAULT_WAIT = 300.0


class StackBusy(VoltageIacError):
    """Another apply of the same stack held the lock for longer than the wait."""


def lock_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    configured = env.get("VOLTAGE_IAC_LOCK_DIR", "").strip()
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "voltage-iac" / "locks"


def lock_path(scope: str, environ: Mapping[str, str] | None = None) -> Path:
    name = hashlib.sha256(scope.encode()).hexdigest()[:32]
    return lock_dir(environ) / f"apply-{name}.lock"


@contextlib.contextmanager
def stack_lock(
    scope: str,
    *,
    wait: float = DEFAULT_WAIT,
    on_wait: Callable[[str], None] | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[None]:
    """Hold the apply lock of `scope` (e.g. `voltage/<organization>/<stack>`).

    Waits up to `wait` seconds for another holder; `on_wait` gets a message naming it
    once, when the wait starts."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    path = lock_path(scope, environ)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = clock() + wait
        told = False
        pause = 0.05
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if not told and on_wait is not None:
                    on_wait(
                        f"another apply of {scope} is running ({holder}); waiting up to "
                        f"{wait:g}s for it to finish"
                    )
                    told = True
                if clock() + pause > deadline:
                    raise StackBusy(
                        f"another apply of {scope} is still running ({holder}) after "
                        f"{wait:g}s; nothing was changed",
                        hint="wait for it to finish, then run apply again (it plans afresh)",
                    ) from None
                sleep(pause)
                pause = min(pause * 2, 1.0)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"
