"""Choosing and opening the backend a configuration names.

Called by the CLI; returns a `Provider` inside a context manager that also stops what it
started (the embedded emulator). The API URL comes from `--api-url`, else
`VOLTAGE_API_URL`, else the config's `provider.api_url`, else the public Voltage API;
the value `emulator` selects the embedded emulator (no credentials needed). The API key
comes from `VOLTAGE_API_KEY` or from the file named by `VOLTAGE_API_KEY_FILE`, and is
held as a `Secret` from the moment it is read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from voltage_iac.errors import AuthError, UsageError
from voltage_iac.model import DesiredState
from voltage_iac.providers.base import Provider
from voltage_iac.secret import Secret

DEFAULT_API_URL = "https://voltageapi.com/v1"
EMULATOR = "emulator"
DEFAULT_EMULATOR_DB = ".voltage-iac/emulator.db"


@dataclass(frozen=True)
class ConnectOptions:
    api_url: str | None = None  # --api-url
    emulator_db: str | None = None  # --emulator-db
    wait_timeout: float = 120.0  # seconds to wait for a 202 to become visible
    request_timeout: float = 30.0
    request_deadline: float = field(default_factory=lambda: _deadline_from_environment(os.environ))


def _deadline_from_environment(environ: Mapping[str, str]) -> float:
    """Total seconds per HTTP request: VOLTAGE_IAC_REQUEST_DEADLINE, else 60."""
    raw = environ.get("VOLTAGE_IAC_REQUEST_DEADLINE", "").strip()
    try:
        value = float(raw) if raw else 60.0
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise UsageError(
            f"VOLTAGE_IAC_REQUEST_DEADLINE={raw!r} is not a positive number of seconds"
        )
    return value


def api_key_from_environment(environ: Mapping[str, str]) -> Secret:
    """The Voltage API key from VOLTAGE_API_KEY or VOLTAGE_API_KEY_FILE (never echoed)."""
    value = environ.get("VOLTAGE_API_KEY", "").strip()
    key_file = environ.get("VOLTAGE_API_KEY_FILE", "").strip()
    if value and key_file:
        raise UsageError(
            "both VOLTAGE_API_KEY and VOLTAGE_API_KEY_FILE are set",
            hint="set only one of them",
        )
    if key_file:
        try:
            value = Path(key_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
            raise UsageError(
                f"cannot read the API key file named by VOLTAGE_API_KEY_FILE ({key_file}): {reason}"
            ) from None
        if not value:
            raise UsageError(f"the API key file {key_file} is empty")
    if not value:
        raise AuthError(
            "no API key: set VOLTAGE_API_KEY (or VOLTAGE_API_KEY_FILE to a file holding it)",
            hint="or use the embedded emulator: provider.api_url: emulator",
        )
    return Secret(value)


def resolve_api_url(
    desired: DesiredState, options: ConnectOptions, environ: Mapping[str, str]
) -> str:
    url = (
        options.api_url
        or environ.get("VOLTAGE_API_URL", "").strip()
        or desired.api_url
        or DEFAULT_API_URL
    )
    if url == EMULATOR:
        return url
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(
            f"API URL {url!r} is not an http(s) URL",
            hint=f"use e.g. {DEFAULT_API_URL}, or `{EMULATOR}` for the embedded emulator",
        )
    return url.rstrip("/")


@contextmanager
def open_provider(
    desired: DesiredState,
    options: ConnectOptions | None = None,
    environ: Mapping[str, str] | None = None,
) -> Iterator[Provider]:
    """Open the backend for `desired`; closes it (and any embedded emulator) on exit."""
    options = options or ConnectOptions()
    env = os.environ if environ is None else environ
    if desired.provider_kind == "lnbits":
        from voltage_iac.providers.lnbits import LnbitsProvider

        if options.api_url or options.emulator_db:
            raise UsageError(
                "--api-url and --emulator-db apply to the Voltage provider only",
                hint="an LNbits config names its server in provider.url",
            )
        lnbits = LnbitsProvider.from_environment(
            desired,
            env,
            wait_timeout=options.wait_timeout,
            timeout=options.request_timeout,
            deadline=options.request_deadline,
        )
        try:
            yield lnbits
        finally:
            lnbits.close()
        return

    from voltage_iac.client import VoltageClient
    from voltage_iac.providers.voltage import VoltageProvider

    url = resolve_api_url(desired, options, env)
    if url == EMULATOR:
        from voltage_iac.emulator.server import EmbeddedEmulator

        db = options.emulator_db or env.get("VOLTAGE_IAC_EMULATOR_DB") or DEFAULT_EMULATOR_DB
        Path(db).parent.mkdir(parents=True, exist_ok=True)
        with EmbeddedEmulator(db) as emulator:
            client = VoltageClient(
                emulator.base_url,
                emulator.api_key,
                timeout=options.request_timeout,
                deadline=options.request_deadline,
            )
            provider = VoltageProvider(
                client,
                desired.organization_id,
                description=f"embedded emulator, state in {db}",
                wait_timeout=options.wait_timeout,
            )
            try:
                yield provider
            finally:
                provider.close()
        return

    key = api_key_from_environment(env)
    client = VoltageClient(
        url, key, timeout=options.request_timeout, deadline=options.request_deadline
    )
    provider = VoltageProvider(
        client,
        desired.organization_id,
        description=f"Voltage API at {url}",
        wait_timeout=options.wait_timeout,
    )
    try:
        yield provider
    finally:
        provider.close()
