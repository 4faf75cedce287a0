"""`voltage-iac emulator ...`: serve the local emulator of the Voltage API, or seed it.

Sits at the command-line edge of the emulator; the main command line attaches the
`emulator` click group. `serve` runs `server.serve` in the foreground on a loopback
address; `seed` writes a seed file into an emulator database. Errors are raised as
`EmulatorError` for the main command line to print. The API key the
emulator accepts is read from an environment variable, so it never appears in a process
list, and it is never printed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from voltage_iac.emulator.errors import ApiKey, EmulatorError
from voltage_iac.emulator.faults import Faults
from voltage_iac.emulator.seed import load_seed_file
from voltage_iac.emulator.server import serve
from voltage_iac.emulator.store import Store

DEFAULT_DB = Path(".voltage-iac") / "emulator.db"
RATE = click.FloatRange(0.0, 1.0)
F = TypeVar("F", bound=Callable[..., Any])


@click.group("emulator")
def emulator() -> None:
    """Run a local emulator of the Voltage Payments API (wallets, policies, lines of credit,
    webhooks, receive payments)."""


def _db_option(help: str | None = None) -> Callable[[F], F]:
    return click.option(
        "--db",
        "db_path",
        default=str(DEFAULT_DB),
        show_default=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help=help,
    )


def _seconds_option(name: str, default: float, help: str) -> Callable[[F], F]:
    return click.option(
        name, type=click.FloatRange(0.0), default=default, show_default=True, help=help
    )


def _share_option(name: str, help: str) -> Callable[[F], F]:
    """A fault setting that is the share (0 to 1) of the requests it hits."""
    return click.option(name, type=RATE, default=0.0, help=help)


@emulator.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address only.")
@click.option("--port", default=8790, show_default=True, type=click.IntRange(0, 65535))
@_db_option("Emulator database (created, with the demo world, when missing).")
@click.option(
    "--seed",
    "seed_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Seed file (YAML or JSON) to load before serving.",
)
@click.option(
    "--api-key-env",
    default="VOLTAGE_API_KEY",
    show_default=True,
    help="Environment variable holding the API key the emulator accepts (write access).",
)
@_seconds_option("--visibility-delay", 0.2, "Seconds before an accepted write shows in reads.")
@click.option(
    "--latency-ms",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Added to every API request.",
)
@_share_option("--fail-before-commit", "Share of writes answered 500 without being done.")
@_share_option("--fail-after-commit", "Share of writes done, then answered 500.")
@_share_option(
    "--drop-after-commit", "Share of writes done, then answered with a cut-off response."
)
@_share_option("--rate-limit", "Share of requests answered 429 with Retry-After.")
@_share_option("--slow-visibility", "Share of writes that take longer to show.")
@_share_option("--deletion-fails", "Share of deletes that are accepted, then fail.")
@_share_option(
    "--secret-dropped",
    "Share of webhook creates and key rotations done, then answered with a cut-off response.",
)
@_share_option(
    "--rotation-fails", "Share of webhook key rotations answered 500 without being done."
)
@_seconds_option(
    "--invoice-delay", 0.0, "Seconds a receive payment stays generating before its invoice appears."
)
@_share_option("--slow-invoice", "Share of receives whose invoice comes late.")
@_share_option("--receive-fails", "Share of receives that fail asynchronously.")
@_share_option(
    "--receive-fee-refused",
    "Share of receives refused as if a nonzero receive processing fee applied.",
)
@click.option(
    "--fault-seed",
    type=int,
    default=None,
    help="Seed of the fault decisions (same seed, same faults).",
)
def serve_command(
    host: str,
    port: int,
    db_path: Path,
    seed_file: Path | None,
    api_key_env: str,
    fault_seed: int | None,
    **fault_settings: Any,
) -> None:
    """Serve the emulator on HTTP until Ctrl-C. Base URL: http://HOST:PORT/v1."""
    key = os.environ.get(api_key_env, "")
    if not key:
        raise EmulatorError(
            f"the environment variable {api_key_env} is not set: the emulator needs the "
            "API key it should accept",
            hint=f"export {api_key_env}=<any secret string>, then point the tool at the "
            "emulator with the same key",
        )
    try:
        faults = Faults(seed=fault_seed, **fault_settings)
    except ValueError as exc:
        raise EmulatorError(str(exc)) from None

    def ready(url: str) -> None:
        click.echo(f"Voltage API emulator listening on {url}")
        click.echo(f"  database: {db_path}")
        click.echo(f"  admin:    {url[: -len('/v1')]}/_emulator/state")
        click.echo(f"  accepts the API key in ${api_key_env}; press Ctrl-C to stop")

    serve(
        host,
        port,
        db_path,
        seed_file=seed_file,
        api_keys=[ApiKey(key)],
        faults=faults,
        on_ready=ready,
    )


@emulator.command("seed")
@click.argument("seed_file", type=click.Path(dir_okay=False, path_type=Path))
@_db_option()
def seed_command(seed_file: Path, db_path: Path) -> None:
    """Load SEED_FILE (YAML or JSON) into the emulator database."""
    seed = load_seed_file(seed_file)
    with Store(db_path) as store:
        store.load_seed(seed)
    click.echo(
        f"seeded organization {seed['organization_id']} into {db_path}: "
        f"{len(seed['environments'])} environment(s), "
        f"{len(seed['lines_of_credit'])} line(s) of credit, {len(seed['wallets'])} wallet(s), "
        f"{len(seed['webhooks'])} webhook(s), {len(seed['api_keys'])} API key(s)"
    )
