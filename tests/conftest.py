"""Shared fixtures: emulators (in-process and served over loopback), the CLI, LNbits.

Every server a fixture starts listens on 127.0.0.1 only and is stopped at teardown.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner, Result

from tests.served import TEST_KEY, ServedEmulator
from tests.served import served_emulator as start_served_emulator
from voltage_iac.cli import cli
from voltage_iac.emulator.seed import (
    DEMO_ORGANIZATION_ID,
    DEMO_PRODUCTION_ENVIRONMENT_ID,
    DEMO_PRODUCTION_LINE_ID,
    DEMO_SEED,
    DEMO_STAGING_ENVIRONMENT_ID,
    DEMO_STAGING_LINE_ID,
)
from voltage_iac.emulator.server import EmbeddedEmulator
from voltage_iac.secret import Secret

pytest_plugins = ["tests.lnbits_server"]

# Apply locks of test runs (in-process and child processes) stay out of the user's cache.
os.environ.setdefault("VOLTAGE_IAC_LOCK_DIR", tempfile.mkdtemp(prefix="voltage-iac-locks-"))

REPO = Path(__file__).resolve().parents[1]

#: The layer of each test module, as markers: `pytest -m core` runs the pure rules alone
#: in seconds. Every module must be listed (collection fails otherwise).
#: - core: model, kinds, diff, plan, renderers, configuration loader, engine over an
#:   in-memory backend. No socket and no child process (enforced: see `_core_is_pure`).
#: - client: the HTTP core and the Voltage client, against mocked transports and local
#:   misbehaving servers.
#: - emulator: the emulator of the API as a test double, in process.
#: - integration: real parts as a user meets them: the emulator served over 127.0.0.1,
#:   a real LNbits server, the CLI in child processes, the linters of the CI recipes.
LAYERS: dict[str, str] = {
    **dict.fromkeys(
        (
            "test_config",
            "test_config_fuzz",
            "test_config_messages",
            "test_config_positions",
            "test_engine_deferred",
            "test_listing_scan",
            "test_config_paths",
            "test_diff",
            "test_drift",
            "test_engine",
            "test_identity",
            "test_markdown",
            "test_plan",
            "test_render",
            "test_secret",
            "test_units",
            "test_webhook_kind",
        ),
        "core",
    ),
    **dict.fromkeys(
        ("test_client", "test_client_contract", "test_http", "test_lnbits_verify"), "client"
    ),
    **dict.fromkeys(
        (
            "test_emulator",
            "test_emulator_allocation",
            "test_emulator_contract",
            "test_emulator_faults",
            "test_emulator_fidelity",
            "test_emulator_payments",
            "test_emulator_schemathesis",
            "test_emulator_webhooks",
        ),
        "emulator",
    ),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    layers = ("core", "client", "emulator", "integration")
    for item in items:
        if any(item.get_closest_marker(name) for name in layers):
            continue  # a test may name its own layer (a command sink among core rules)
        module = item.module.__name__.rpartition(".")[2] if item.module else ""
        item.add_marker(LAYERS.get(module, "integration"))


@pytest.fixture(autouse=True)
def _core_is_pure(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A core test that opens a connection or starts a process fails: it is not core."""
    if request.node.get_closest_marker("core") is None:
        return

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a core test may not open a socket or start a process")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


CONTRACT = REPO.parent / "shared" / "reference" / "voltage-openapi.json"


def config_doc(wallets: dict[str, Any], *, stack: str = "e2e", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": 1,
        "stack": stack,
        "provider": {"organization_id": DEMO_ORGANIZATION_ID},
        "environments": {
            "staging": {"id": DEMO_STAGING_ENVIRONMENT_ID, "network": "mutinynet"},
            "production": {"id": DEMO_PRODUCTION_ENVIRONMENT_ID, "network": "mainnet"},
        },
        "lines_of_credit": {"main": DEMO_STAGING_LINE_ID, "prod": DEMO_PRODUCTION_LINE_ID},
        "wallets": wallets,
    }
    doc.update(extra)
    return doc


def wallet(name: str, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "environment": "staging",
        "line_of_credit": "main",
        "limit": "1000 sat",
    }
    entry.update(fields)
    return entry


@dataclass
class Backend:
    """Where the CLI under test sends its requests, and how to run it."""

    mode: str
    args: list[str]
    env: dict[str, str]
    tmp: Path
    api: httpx.Client | None = None  # direct access to the emulator's API (for checks)
    admin_url: str = ""
    runner: CliRunner = field(default_factory=CliRunner)

    def write_config(self, doc: dict[str, Any], name: str = "wallets.yaml") -> Path:
        path = self.tmp / name
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return path

    def run(self, *argv: str, env: dict[str, str] | None = None) -> Result:
        command, rest = argv[0], list(argv[1:])
        args = [command, *rest]
        if command in ("plan", "apply", "drift", "import"):
            args += self.args
        merged = {**self.env, **(env or {})}
        return self.runner.invoke(cli, args, env=merged, catch_exceptions=False)

    def wallets(self, *, inactive: bool = True) -> list[dict[str, Any]]:
        """Every wallet in the demo staging environment, straight from the API."""
        assert self.api is not None
        answer = self.api.get(
            f"/organizations/{DEMO_ORGANIZATION_ID}/wallets",
            params={
                "environment_id": DEMO_STAGING_ENVIRONMENT_ID,
                "inactive": "true" if inactive else "false",
            },
        )
        answer.raise_for_status()
        return list(answer.json())

    def wait_for(self, predicate: Any, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.02)


@pytest.fixture
def embedded_emulator(tmp_path: Path) -> Iterator[EmbeddedEmulator]:
    with EmbeddedEmulator(
        tmp_path / "emulator.db", seed=DEMO_SEED, api_key=Secret(TEST_KEY), visibility_delay=0.05
    ) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def _shared_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedEmulator]:
    """One `voltage-iac emulator serve` child process for the whole run."""
    with start_served_emulator(tmp_path_factory.mktemp("served")) as emulator:
        yield emulator


@pytest.fixture
def served_emulator(_shared_served: ServedEmulator) -> Iterator[tuple[str, str]]:
    """The served emulator, as new: reset to the demo seed with its default faults (no
    process start per test); yields (base_url, admin_url). Tests that need their own
    process (other latency, a kill) start one with `tests.served.served_emulator`."""
    emu = _shared_served
    assert emu.process.poll() is None, "the shared served emulator has stopped"
    emu.admin.put(emu.admin_url + "/faults", json={"visibility_delay": 0.05}).raise_for_status()
    emu.admin.post(emu.admin_url + "/reset", json=DEMO_SEED).raise_for_status()
    yield emu.base_url, emu.admin_url


@pytest.fixture(params=["embedded", "served"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The CLI against the emulator: embedded in the CLI's own process (the quick start's
    `api_url: emulator`), or served by `voltage-iac emulator serve` over loopback."""
    base_env = {"NO_COLOR": "1", "VOLTAGE_API_URL": "", "VOLTAGE_API_KEY": ""}
    if request.param == "embedded":
        db = tmp_path / "cli-emulator.db"
        # A second emulator on the same database gives the test its own view of the API.
        args = ["--api-url", "emulator", "--emulator-db", str(db)]
        with EmbeddedEmulator(db, api_key=Secret(TEST_KEY), visibility_delay=0.05) as observer:
            api = httpx.Client(base_url=observer.base_url, headers={"x-api-key": TEST_KEY})
            try:
                yield Backend("embedded", args, base_env, tmp_path, api, observer.admin_url)
            finally:
                api.close()
    else:
        base_url, admin_url = request.getfixturevalue("served_emulator")
        env = {**base_env, "VOLTAGE_API_KEY": TEST_KEY}
        api = httpx.Client(base_url=base_url, headers={"x-api-key": TEST_KEY})
        try:
            yield Backend("served", ["--api-url", base_url], env, tmp_path, api, admin_url)
        finally:
            api.close()


@pytest.fixture
def contract() -> dict[str, Any]:
    if not CONTRACT.exists():
        pytest.skip(f"the official contract is not beside the repository ({CONTRACT})")
    import json

    return dict(json.loads(CONTRACT.read_text(encoding="utf-8")))
