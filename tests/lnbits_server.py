"""A real LNbits server for the tests: install once, start per test session, stop at the end.

Test support only (not part of the product). Installs LNbits 1.6.2 into a cached virtualenv
(`~/.cache/voltage-iac/lnbits-1.6.2`, or `VOLTAGE_IAC_LNBITS_VENV`), starts it with uvicorn on
127.0.0.1 and a free port (FakeWallet funding source, SQLite in a fresh data folder, rate
limit raised), claims the superuser through `first_install` and registers test accounts.
Everything a server or the install check writes (its database, its `.lnbits_auth_key`
secret, its log) lives in a temporary folder removed when it stops: nothing lands in the
checkout.

Pytest fixtures (load this module as a plugin: `pytest_plugins = ["tests.lnbits_server"]` in
`tests/conftest.py`, or `-p tests.lnbits_server` on the command line):
- `lnbits_server` (session): a running `LnbitsServer` (`.url`, `.admin_token`).
- `lnbits_account` (function): a fresh account with no wallets (`LnbitsAccount`).
- `new_lnbits_account` (function): a callable that makes further fresh accounts.

If the install or the start fails, the fixtures raise `LnbitsSetupError` naming the step
that failed: the tests that use them fail, they are never skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from voltage_iac.secret import Secret

LNBITS_VERSION = "1.6.2"
REQUIREMENTS = (f"lnbits=={LNBITS_VERSION}", "bitstring<5")
VENV_ENV_VAR = "VOLTAGE_IAC_LNBITS_VENV"
DEFAULT_VENV = Path.home() / ".cache" / "voltage-iac" / f"lnbits-{LNBITS_VERSION}"

INSTALL_TIMEOUT = 900.0  # seconds for venv creation plus pip install
CHECK_TIMEOUT = 120.0  # seconds for checking that an existing install imports
START_TIMEOUT = 90.0  # seconds until the server answers
STOP_TIMEOUT = 10.0  # seconds between terminate and kill
HTTP_TIMEOUT = 30.0

_CHECK_SCRIPT = f"""
import importlib.metadata as m
assert m.version("lnbits") == "{LNBITS_VERSION}", m.version("lnbits")
assert int(m.version("bitstring").split(".")[0]) < 5, m.version("bitstring")
import uvicorn
import lnbits.app
"""


class LnbitsSetupError(RuntimeError):
    """Installing, starting or preparing the test LNbits server failed."""


def _tail(text: str | bytes | None, lines: int = 30) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return "\n".join(text.strip().splitlines()[-lines:])


def venv_path() -> Path:
    return Path(os.environ.get(VENV_ENV_VAR) or DEFAULT_VENV).expanduser()


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def site_packages(venv: Path) -> Path:
    """The folder that holds the `lnbits` package (LNbits must start from there)."""
    found = sorted((venv / "lib").glob("python3*/site-packages/lnbits"))
    if not found:
        raise LnbitsSetupError(f"LNbits package folder not found under {venv}/lib")
    return found[0].parent


def _install_works(venv: Path) -> tuple[bool, str]:
    python = venv_python(venv)
    if not python.exists():
        return False, f"{python} does not exist"
    # Importing LNbits writes a server secret (`.lnbits_auth_key`) into its data folder,
    # `./data` by default: run the check in a temporary folder that is then removed.
    with tempfile.TemporaryDirectory(prefix="voltage-iac-lnbits-check-") as scratch:
        env = {key: value for key, value in os.environ.items() if not key.startswith("LNBITS")}
        env["LNBITS_DATA_FOLDER"] = str(Path(scratch) / "data")
        try:
            done = subprocess.run(
                [str(python), "-c", _CHECK_SCRIPT],
                capture_output=True,
                timeout=CHECK_TIMEOUT,
                check=False,
                cwd=scratch,
                env=env,
            )
        except subprocess.TimeoutExpired:
            return False, f"checking the install timed out after {CHECK_TIMEOUT:.0f}s"
    if done.returncode != 0:
        return False, _tail(done.stderr)
    return True, ""


def _run_step(what: str, argv: list[str], deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise LnbitsSetupError(f"installing LNbits: {what}: no time left")
    try:
        done = subprocess.run(argv, capture_output=True, timeout=remaining, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LnbitsSetupError(
            f"installing LNbits: {what} timed out after {remaining:.0f}s\n{_tail(exc.stderr)}"
        ) from None
    if done.returncode != 0:
        raise LnbitsSetupError(
            f"installing LNbits: {what} failed (exit {done.returncode})\n"
            f"{_tail(done.stderr) or _tail(done.stdout)}"
        )


def ensure_lnbits_venv(venv: Path | None = None, *, timeout: float = INSTALL_TIMEOUT) -> Path:
    """Return a virtualenv with LNbits installed; install it first if it is missing or broken.

    Concurrent callers (several test processes) wait on a lock file next to the venv.
    """
    venv = (venv or venv_path()).expanduser()
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.parent / f".{venv.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ok, _ = _install_works(venv)
        if ok:
            return venv
        if venv.exists() and any(venv.iterdir()) and not (venv / "pyvenv.cfg").exists():
            raise LnbitsSetupError(
                f"installing LNbits: {venv} exists and is not a virtualenv; "
                f"remove it or point {VENV_ENV_VAR} elsewhere"
            )
        deadline = time.monotonic() + timeout
        _run_step(
            "creating the virtualenv",
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            deadline,
        )
        _run_step(
            f"pip install {' '.join(REQUIREMENTS)}",
            [
                str(venv_python(venv)),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
                *REQUIREMENTS,
            ],
            deadline,
        )
        ok, why = _install_works(venv)
        if not ok:
            raise LnbitsSetupError(f"installing LNbits: the new install does not import\n{why}")
        return venv


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux only)
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class LnbitsAccount:
    """A registered LNbits account: its bearer token and credentials (test values only)."""

    url: str
    username: str
    password: Secret
    token: Secret

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token.reveal()}"}

    def wallets(self) -> list[dict[str, Any]]:
        """Every live wallet of the account, through the paginated list (no side effects)."""
        out: list[dict[str, Any]] = []
        with httpx.Client(base_url=self.url, timeout=HTTP_TIMEOUT) as client:
            for page in range(100):
                response = client.get(
                    "/api/v1/wallet/paginated",
                    params={"limit": 1000, "offset": page * 1000, "sortby": "id"},
                    headers=self.headers(),
                )
                response.raise_for_status()
                data = response.json()["data"]
                out.extend(data)
                if len(data) < 1000:
                    return out
        raise LnbitsSetupError("listing test wallets: too many pages")

    def create_wallet(self, name: str) -> dict[str, Any]:
        """Create a wallet the way a person would in LNbits (not through voltage-iac)."""
        with httpx.Client(base_url=self.url, timeout=HTTP_TIMEOUT) as client:
            response = client.post("/api/v1/wallet", json={"name": name}, headers=self.headers())
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result

    def delete_wallet(self, wallet_id: str) -> None:
        with httpx.Client(base_url=self.url, timeout=HTTP_TIMEOUT) as client:
            response = client.delete(f"/api/v1/wallet/{wallet_id}", headers=self.headers())
            response.raise_for_status()


@dataclass
class LnbitsServer:
    """One LNbits process on 127.0.0.1 with its own data folder."""

    venv: Path
    port: int = field(default_factory=free_port)
    url: str = ""
    admin_token: Secret = field(default_factory=lambda: Secret(""))
    workdir: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    _accounts: int = 0

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return self.workdir / "server.log" if self.workdir else None

    def log_tail(self, lines: int = 40) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return ""
        return _tail(path.read_text("utf-8", "replace"), lines)

    def start(self, *, timeout: float = START_TIMEOUT) -> None:
        """Start the server, wait until it answers and claim its superuser (or raise)."""
        cwd = site_packages(self.venv)
        self.workdir = Path(tempfile.mkdtemp(prefix="voltage-iac-lnbits-"))
        try:
            self._spawn(cwd)
            self._wait_ready(timeout)
            self.admin_token = self._claim_superuser()
        except OSError as exc:
            self.stop()
            raise LnbitsSetupError(f"starting LNbits: {exc}") from exc
        except BaseException:
            self.stop()
            raise

    def _spawn(self, cwd: Path) -> None:
        assert self.workdir is not None
        data = self.workdir / "data"
        data.mkdir()
        env = {key: value for key, value in os.environ.items() if not key.startswith("LNBITS")}
        env.update(
            {
                "LNBITS_DATA_FOLDER": str(data),
                "LNBITS_BACKEND_WALLET_CLASS": "FakeWallet",
                "LNBITS_RATE_LIMIT_NO": "1000000",
                "LNBITS_RATE_LIMIT_UNIT": "minute",
                "LNBITS_EXTENSIONS_DEFAULT_INSTALL": "[]",
                "LNBITS_EXTENSIONS_MANIFESTS": "[]",
                "LNBITS_WASM_EXTENSIONS_MANIFESTS": "[]",
                "ENABLE_LOG_TO_FILE": "false",
                "HOST": "127.0.0.1",
                "PORT": str(self.port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        with open(self.workdir / "server.log", "wb") as log:
            self.process = subprocess.Popen(
                [
                    str(venv_python(self.venv)),
                    "-m",
                    "uvicorn",
                    "lnbits.__main__:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                code = self.process.poll()
                if code is not None:
                    raise LnbitsSetupError(
                        f"starting LNbits: the server exited with code {code} before it "
                        f"answered\n{self.log_tail()}"
                    )
                try:
                    response = client.get("/api/v1/health")
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                else:
                    if response.status_code < 500:
                        return
                    last = f"HTTP {response.status_code}"
                time.sleep(0.2)
        raise LnbitsSetupError(
            f"starting LNbits: no answer on {self.url} within {timeout:.0f}s ({last})\n"
            f"{self.log_tail()}"
        )

    def _claim_superuser(self) -> Secret:
        password = secrets.token_urlsafe(18)
        with httpx.Client(base_url=self.url, timeout=HTTP_TIMEOUT) as client:
            response = client.put(
                "/api/v1/auth/first_install",
                json={"username": "admin", "password": password, "password_repeat": password},
            )
        if response.status_code != 200:
            raise LnbitsSetupError(
                f"starting LNbits: claiming the superuser failed: HTTP {response.status_code} "
                f"{response.text[:300]}"
            )
        return Secret(response.json()["access_token"])

    def register_account(self, *, empty: bool = True) -> LnbitsAccount:
        """Register a new account; with `empty`, delete the wallet LNbits gives it."""
        self._accounts += 1
        username = f"user{self._accounts}x{secrets.token_hex(3)}"
        password = secrets.token_urlsafe(18)
        with httpx.Client(base_url=self.url, timeout=HTTP_TIMEOUT) as client:
            response = client.post(
                "/api/v1/auth/register",
                json={"username": username, "password": password, "password_repeat": password},
            )
        if response.status_code != 200:
            raise LnbitsSetupError(
                f"registering a test account failed: HTTP {response.status_code} "
                f"{response.text[:300]}"
            )
        account = LnbitsAccount(
            url=self.url,
            username=username,
            password=Secret(password),
            token=Secret(response.json()["access_token"]),
        )
        if empty:
            for wallet in account.wallets():
                account.delete_wallet(wallet["id"])
            if account.wallets():
                raise LnbitsSetupError("emptying a test account failed: wallets remain")
        return account

    def stop(self) -> None:
        """Terminate the server (kill it if it does not stop in time) and remove its data."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


@contextlib.contextmanager
def running_lnbits(venv: Path | None = None) -> Iterator[LnbitsServer]:
    """Install (if needed), start, yield and always stop an LNbits server."""
    server = LnbitsServer(venv=ensure_lnbits_venv(venv))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lnbits_server() -> Iterator[LnbitsServer]:
    """One real LNbits server for the whole test session."""
    with running_lnbits() as server:
        yield server


@pytest.fixture
def new_lnbits_account(lnbits_server: LnbitsServer) -> Callable[[], LnbitsAccount]:
    """Make fresh, empty accounts on the session's server (one per call)."""

    def make() -> LnbitsAccount:
        return lnbits_server.register_account(empty=True)

    return make


@pytest.fixture
def lnbits_account(new_lnbits_account: Callable[[], LnbitsAccount]) -> LnbitsAccount:
    """A fresh account with no wallets, so tests never see each other's wallets."""
    return new_lnbits_account()
