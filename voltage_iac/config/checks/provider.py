"""Meaning checks of `provider:`: which backend, and the settings it needs.

Run first by `build.py`. The backend's declaration (`providers/registry.py`) decides
which `provider:` fields are allowed: any other field the schema knows is refused with
the declared reason. What remains here is each backend's own meaning: Voltage needs an
organization (from `organization_id`, or else the environment variable
VOLTAGE_ORGANIZATION_ID) and takes an optional `api_url`; LNbits needs a `url` and
takes an optional `network`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from voltage_iac.config.document import Doc, Issues, canonical_uuid
from voltage_iac.config.merge import Entry, Merged
from voltage_iac.providers import registry as backends
from voltage_iac.providers.registry import BackendSpec

ORGANIZATION_VARIABLE = "VOLTAGE_ORGANIZATION_ID"


@dataclass(frozen=True)
class Settings:
    """What `provider:` means once checked."""

    organization_id: str = ""
    api_url: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


def is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not any(c.isspace() for c in value)
    )


def check_provider(
    merged: Merged, issues: Issues, environ: Mapping[str, str], first: Doc
) -> tuple[BackendSpec | None, Settings | None]:
    """The backend's declaration and the checked settings (None: refused, reported)."""
    from voltage_iac.config.schema import load_schema

    entry = merged.single.get("provider")
    if entry is None:
        issues.at(
            first,
            (),
            "missing `provider`",
            "add `provider: {organization_id: ${VOLTAGE_ORGANIZATION_ID}}` for Voltage, "
            "or `provider: {kind: lnbits, url: http://...}`",
        )
        return None, None
    provider = entry.value
    if not isinstance(provider, dict):
        return None, None  # reported by the schema check
    kind = provider.get("kind", "voltage")
    if kind not in backends.names():
        return None, None  # reported by the schema check (one of the declared names)
    backend = backends.spec(kind)
    known = load_schema()["$defs"]["provider"]["properties"]
    refused = False
    for name in provider:
        if name != "kind" and name in known and name not in backend.provider_fields:
            issues.at(
                entry.doc,
                (*entry.path, name),
                f"`{name}` is not supported by the {backend.name} provider",
                backend.reason(f"provider.{name}"),
                key=True,
            )
            refused = True
    meaning = _MEANING.get(backend.name)
    settings = meaning(entry, provider, issues, environ) if meaning else Settings()
    return backend, None if refused else settings


def _voltage(
    entry: Entry, provider: dict[str, Any], issues: Issues, environ: Mapping[str, str]
) -> Settings | None:
    if "organization_id" in provider:
        organization_id = canonical_uuid(provider["organization_id"])  # schema: a UUID
    else:
        fallback = environ.get(ORGANIZATION_VARIABLE)
        organization_id = canonical_uuid(fallback)
        if not fallback:
            issues.at(
                entry.doc,
                entry.path,
                "missing `organization_id` for the voltage provider, and the environment "
                f"variable {ORGANIZATION_VARIABLE} is not set",
                "add `organization_id: <organization UUID>` under `provider:`, or export "
                f"{ORGANIZATION_VARIABLE}=<organization UUID> (from the Voltage dashboard)",
                key=True,
            )
        elif organization_id is None:
            issues.at(
                entry.doc,
                entry.path,
                f"the value of ${{{ORGANIZATION_VARIABLE}}} (used because `provider` has no "
                "`organization_id`) is not a UUID",
                f"set {ORGANIZATION_VARIABLE} to the organization UUID from the Voltage "
                "dashboard, or give `organization_id` under `provider:`",
                key=True,
            )
    api_url = provider.get("api_url")
    if isinstance(api_url, str) and api_url != "emulator" and not is_http_url(api_url):
        issues.at(
            entry.doc,
            (*entry.path, "api_url"),
            f"{entry.doc.show((*entry.path, 'api_url'), api_url)} is not an http(s) URL "
            "or `emulator`",
            "write e.g. https://voltageapi.com/v1, or `emulator` for the embedded emulator",
        )
    if organization_id is None or not isinstance(api_url, (str, type(None))):
        return None
    return Settings(organization_id=organization_id, api_url=api_url)


def _lnbits(
    entry: Entry, provider: dict[str, Any], issues: Issues, environ: Mapping[str, str]
) -> Settings | None:
    url = provider.get("url")
    if "url" not in provider:
        issues.at(
            entry.doc,
            entry.path,
            "missing `url` for the lnbits provider",
            "add the server's base URL, e.g. `url: http://127.0.0.1:5000`",
            key=True,
        )
    elif isinstance(url, str) and not is_http_url(url):
        issues.at(
            entry.doc,
            (*entry.path, "url"),
            f"{entry.doc.show((*entry.path, 'url'), url)} is not an http(s) URL",
            "write the server's base URL, e.g. http://127.0.0.1:5000",
        )
    if not isinstance(url, str):
        return None
    options = {"url": url}
    if isinstance(provider.get("network"), str):  # schema: one of the known networks
        options["network"] = provider["network"]
    return Settings(options=options)


_MEANING: dict[
    str, Callable[[Entry, dict[str, Any], Issues, Mapping[str, str]], Settings | None]
] = {"voltage": _voltage, "lnbits": _lnbits}
