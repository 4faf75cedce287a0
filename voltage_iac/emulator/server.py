"""Serving the emulator over HTTP on loopback: embedded (a thread) or in the foreground.

Sits on top of the emulator's app (`app.py`), store and faults. `EmbeddedEmulator` is the
tool's quick-start backend and the test double: the command line and tests start it in a
daemon thread on 127.0.0.1 with an OS-chosen port and talk to it through the ordinary
HTTP client. `serve` runs it in the foreground for `voltage-iac emulator serve`
(`command.py`). Both refuse to listen anywhere but on a loopback address: the emulator
has no real security and its admin endpoints have no authentication at all.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import uvicorn

from voltage_iac.emulator.app import EmulatorApp, create_app
from voltage_iac.emulator.errors import ApiKey, EmulatorError
from voltage_iac.emulator.faults import Faults
from voltage_iac.emulator.seed import demo_seed
from voltage_iac.emulator.store import KeyGrant, Store

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
WRITE_GRANT = KeyGrant(access="write")


class _QuietCutOffs(logging.Filter):
    """The drop-after-commit fault cuts answers off on purpose; uvicorn reports each one
    as an application error. Keep those reports out of the user's terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


_FILTER = _QuietCutOffs()


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    if not is_loopback(host):
        raise EmulatorError(
            f"the emulator only listens on loopback addresses, not {host!r}",
            hint="use --host 127.0.0.1 (or ::1); it has no real security",
        )
    address = "127.0.0.1" if host.strip().lower() == "localhost" else host.strip().strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio then disables Nagle's algorithm on accepted
    # connections; without it every answer with a body waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise EmulatorError(
            f"cannot listen on {address}:{port}: {exc.strerror or exc}",
            hint="pick another --port, or stop whatever is using this one",
        ) from None
    sock.setblocking(False)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def open_store(
    db_path: str | Path,
    *,
    seed: Mapping[str, Any] | None = None,
    clock: Callable[[], float] = time.time,
) -> Store:
    """Open (or create) the database; seed `seed`, or the demo world when the database is
    new and no seed is given."""
    store = Store(db_path, clock=clock)
    try:
        if seed is not None:
            store.load_seed(seed)
        elif store.is_empty():
            store.load_seed(demo_seed())
    except BaseException:
        store.close()
        raise
    return store


def _config(app: EmulatorApp, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        http="h11",
        timeout_graceful_shutdown=2,
    )


class EmbeddedEmulator:
    """The emulator on 127.0.0.1 in a daemon thread of this process.

    Use as a context manager (or `start()` / `stop()`). `base_url` ends in `/v1`;
    `api_key` is accepted with write access to every organization (a random key unless
    one is given; it lives in this process only). `faults` can be changed while it runs.
    `visibility_delay`, when given, overrides `faults.visibility_delay`.
    """

    def __init__(
        self,
        db_path: str | Path,
        *,
        seed: Mapping[str, Any] | None = None,
        api_key: ApiKey | None = None,
        faults: Faults | None = None,
        visibility_delay: float | None = None,
        log_level: str = "warning",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db_path = Path(db_path)
        self.faults = faults if faults is not None else Faults()
        if visibility_delay is not None:
            self.faults.update(visibility_delay=visibility_delay)
        self.api_key = api_key if api_key is not None else ApiKey(secrets.token_urlsafe(32))
        self._seed = seed
        self._clock = clock
        self._log_level = log_level
        self._store: Store | None = None
        self._app: EmulatorApp | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._origin: str | None = None
        self._sock: socket.socket | None = None

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> EmbeddedEmulator:
        if self._thread is not None:
            raise RuntimeError("this emulator is already running")
        _install_log_filter()
        store = open_store(self.db_path, seed=self._seed, clock=self._clock)
        app = create_app(store, self.faults, keys={self.api_key.reveal(): WRITE_GRANT})
        sock = _bind("127.0.0.1", 0)
        server = uvicorn.Server(_config(app, self._log_level))
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="voltage-emulator", daemon=True
        )
        self._store, self._app, self._server, self._thread = store, app, server, thread
        self._sock = sock
        self._origin = _url(sock)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self._origin = None
                self.stop()
                raise RuntimeError("the embedded emulator did not start")
            time.sleep(0.005)  # polls uvicorn's startup flag, bounded by the deadline
        return self

    def stop(self) -> None:
        """Stop serving and close the database (safe to call twice)."""
        server, thread = self._server, self._thread
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(STOP_TIMEOUT)
        if self._store is not None:
            self._store.close()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._server = self._thread = self._store = self._app = None

    def __enter__(self) -> EmbeddedEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what callers use ------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:<port>` (admin endpoints live under `/_emulator`)."""
        if self._origin is None:
            raise RuntimeError("the emulator is not running")
        return self._origin

    @property
    def base_url(self) -> str:
        """The API's base URL, `http://127.0.0.1:<port>/v1`."""
        return self.origin + "/v1"

    @property
    def admin_url(self) -> str:
        return self.origin + "/_emulator"

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the emulator is not running")
        return self._store

    @property
    def app(self) -> EmulatorApp:
        """The running application (its counters are what tests observe)."""
        if self._app is None:
            raise RuntimeError("the emulator is not running")
        return self._app

    def add_key(
        self,
        key: ApiKey,
        *,
        access: str = "write",
        organization_id: str | None = None,
        environment_id: str | None = None,
    ) -> None:
        """Accept another key in this emulator (in this process only)."""
        if self._app is None:
            raise RuntimeError("the emulator is not running")
        if access not in ("read", "write"):
            raise ValueError("access must be read or write")
        self._app.add_key(key.reveal(), KeyGrant(access, organization_id, environment_id))

    def __repr__(self) -> str:
        where = self._origin or "stopped"
        return f"EmbeddedEmulator({str(self.db_path)!r}, {where})"


def serve(
    host: str,
    port: int,
    db_path: str | Path,
    *,
    seed_file: str | Path | None = None,
    api_keys: Sequence[ApiKey] = (),
    faults: Faults | None = None,
    log_level: str = "warning",
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the emulator in the foreground until interrupted.

    Refuses any host that is not a loopback address. `api_keys` are accepted with write
    access to every organization (in this process only; keys in the seed are stored).
    `on_ready` receives the API's base URL once the port is bound.
    """
    from voltage_iac.emulator.seed import load_seed_file

    sock = _bind(host, port)
    try:
        seed = load_seed_file(seed_file) if seed_file is not None else None
        store = open_store(db_path, seed=seed)
    except BaseException:
        sock.close()
        raise
    try:
        keys = {key.reveal(): WRITE_GRANT for key in api_keys if key}
        app = create_app(store, faults if faults is not None else Faults(), keys=keys)
        _install_log_filter()
        server = uvicorn.Server(_config(app, log_level))
        if on_ready is not None:
            on_ready(_url(sock) + "/v1")
        server.run(sockets=[sock])
    finally:
        store.close()
        sock.close()
