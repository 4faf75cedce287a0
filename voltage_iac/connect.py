"""Opening the backend a configuration names: a lookup in the backend registry.

Called by the engine's callers (the CLI); returns a `Backend` inside a context manager
that also stops what it started (the embedded emulator). Each backend's own module says
where its URL and credentials come from (`providers.voltage.open_backend`,
`providers.lnbits.open_backend`); credentials are held as a `Secret` from the moment
they are read. Nothing is imported for a backend the configuration does not use, so a
run against the real API never imports the emulator or its server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from voltage_iac.errors import UsageError
from voltage_iac.model import DesiredState
from voltage_iac.providers import registry
from voltage_iac.providers.base import Backend, ConnectOptions

__all__ = ["ConnectOptions", "api_key_from_environment", "open_backend"]


def api_key_from_environment(environ: Mapping[str, str]) -> object:
    """The Voltage API key from VOLTAGE_API_KEY or VOLTAGE_API_KEY_FILE (never echoed)."""
    from voltage_iac.providers.voltage import api_key_from_environment as read_key

    return read_key(environ)


@contextmanager
def open_backend(
    desired: DesiredState,
    options: ConnectOptions | None = None,
    environ: Mapping[str, str] | None = None,
) -> Iterator[Backend]:
    """Open the backend for `desired`; closes it (and any embedded emulator) on exit."""
    try:
        opener = registry.opener(desired.provider_kind)
    except KeyError:
        raise UsageError(
            f"unknown provider kind {desired.provider_kind!r}",
            hint="use one of: " + ", ".join(registry.names()),
        ) from None
    env = os.environ if environ is None else environ
    with opener(desired, options or ConnectOptions(), env) as backend:
        yield backend
